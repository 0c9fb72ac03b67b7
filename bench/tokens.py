"""OAuth token requests under a cold burst: how many ``POST /auth/oauth/token`` a fresh gateway makes.

    .venv/bin/python -m bench.tokens                      # 200 concurrent, 2 workers, ~10 s
    .venv/bin/python -m bench.tokens --token-ttl 20 --seconds 30   # across token lifetimes

Starts the fake SAP AI Core (``bench.fake``, which counts token calls; its token endpoint waits
``--token-delay`` seconds to widen any race) and a fresh gateway, then, with no warm-up, releases
``--concurrency`` streaming requests at the same instant and keeps that concurrency for
``--seconds``. The target: one token request per worker per token lifetime. A token's usable
lifetime is ``ttl - min(300, ttl / 10)`` (``app/upstream/oauth.py``), so the allowed count is
``workers x (floor(elapsed / usable) + 1)``.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import math  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402
from gevent.event import Event  # noqa: E402

from bench import procs, report  # noqa: E402
from bench.client import Conn, build_request, perf  # noqa: E402

RESULTS_DIR = procs.ROOT / "bench" / "results"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.tokens", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--concurrency", "-c", type=int, default=200)
    p.add_argument("--workers", type=int, default=2)
    p.add_argument("--seconds", type=float, default=5.0, help="keep the concurrency this long")
    p.add_argument("--token-ttl", type=int, default=43199, help="expires_in of the fake's tokens")
    p.add_argument("--token-delay", type=float, default=0.2, help="seconds the fake's token endpoint waits")
    p.add_argument("--fake-ttft", type=float, default=0.05)
    p.add_argument("--fake-chunks", type=int, default=4)
    p.add_argument("--fake-interval", type=float, default=0.005)
    p.add_argument("--json", type=Path)
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    procs.install_signal_exit()
    procs.raise_nofile(args.concurrency * 4 + 1024)
    wd = procs.workdir("gateway-tokens-")
    started = datetime.datetime.now(datetime.timezone.utc)
    try:
        fake = procs.start_fake(wd, ttft=args.fake_ttft, chunks=args.fake_chunks, interval=args.fake_interval,
                                token_ttl=args.token_ttl, token_delay=args.token_delay)
        before = fake.stats()["token_calls"]
        gateway = procs.start_gateway(fake, wd, workers=args.workers)
        after_start = fake.stats()["token_calls"]
        out = burst(args, gateway)
        stats = fake.stats()
        log = gateway.log_counts()
    finally:
        procs.stop_all()
    calls = stats["token_calls"] - before
    ttl = args.token_ttl
    usable = ttl - min(300.0, ttl / 10)
    lifetimes = math.floor(out["elapsed_s"] / usable) + 1
    active = out["active_workers"] or args.workers
    allowed = active * lifetimes
    result = {
        "meta": {"started": started.isoformat(timespec="seconds"), "args": {
            k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}},
        "token_calls": calls, "token_calls_at_startup": after_start - before,
        "workers": args.workers, "token_lifetimes": lifetimes, "allowed": allowed,
        "per_worker_per_lifetime": round(calls / (active * lifetimes), 2), **out,
        "gateway_log": log, "fake_stats": stats,
    }
    targets = [
        {"target": "OAuth token requests per worker per token lifetime = 1 "
                   f"({args.concurrency} concurrent, fresh gateway)",
         "measured": f"{calls} token calls, {active} of {args.workers} workers served, {lifetimes} "
                     f"lifetime(s): {calls / (active * lifetimes):.2f} per worker per lifetime",
         "pass": 0 < calls <= allowed},
        {"target": "0 errors", "measured": f"{out['errors']} of {out['requests']} {out['error_kinds'] or ''}".strip(),
         "pass": out["errors"] == 0},
    ]
    result["targets"] = targets
    path = args.json or RESULTS_DIR / f"tokens-{started.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    print(report.table(["tokens", "value"], [
        ["token calls at gateway startup (before any request)", str(result["token_calls_at_startup"])],
        ["token calls during the burst and load", str(calls)],
        ["workers / token lifetimes spanned", f"{args.workers} / {lifetimes}"],
        ["client connections per worker (pid: n)", ", ".join(f"{k}: {v}" for k, v in
                                                             out["connections_per_worker"].items()) or "-"],
        ["requests / errors", f"{out['requests']} / {out['errors']}"],
        ["first-wave latency p50 / max (s)", f"{out['first_wave_p50_s']} / {out['first_wave_max_s']}"],
        ["elapsed (s)", str(out["elapsed_s"])],
    ]))
    print("\n" + report.targets_table(targets))
    print(f"\nJSON: {path}")
    import shutil

    shutil.rmtree(wd, ignore_errors=True)
    return 0 if all(t["pass"] for t in targets) else 1


def burst(args, gateway: procs.Gateway) -> dict:
    gw = urlsplit(gateway.url)
    body = json.dumps({"model": procs.SONNET, "max_tokens": 256, "stream": True,
                       "messages": [{"role": "user", "content": "Hello"}]}).encode()
    payload = build_request("POST", "/v1/messages", gw.netloc, [
        ("Authorization", f"Bearer {procs.GATEWAY_KEY}"), ("Content-Type", "application/json"),
        ("anthropic-version", "2023-06-01")], body)
    go = Event()
    first_wave: list[float] = []
    results: list = []
    end = [0.0]

    def client() -> None:
        conn = Conn(gw.hostname, gw.port, timeout=30 + args.token_delay)
        conn.connect()  # connected before the start signal: all requests leave together
        go.wait()
        first = True
        try:
            while True:
                res = conn.request(payload, b"content_block_delta", b"message_stop", b"event: error")
                results.append(res)
                if first:
                    first_wave.append(res.total or 0.0)
                    first = False
                if perf() >= end[0] or len(results) > 1_000_000:
                    return
        finally:
            conn.close()

    greenlets = [gevent.spawn(client) for _ in range(args.concurrency)]
    gevent.sleep(0.5)
    t0 = perf()
    end[0] = t0 + args.seconds
    go.set()
    gevent.sleep(min(1.0, args.seconds / 2))
    per_worker = procs.connections_per_process(gateway.pid, gw.port) if gateway.pid else {}
    gevent.joinall(greenlets, timeout=args.seconds + 60)
    for g in greenlets:
        if not g.dead:
            g.kill(block=False)
    elapsed = perf() - t0
    errors: dict[str, int] = {}
    for r in results:
        if not r.ok:
            errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1
    first_wave.sort()
    return {
        "requests": len(results), "errors": sum(errors.values()), "error_kinds": errors,
        "first_wave_p50_s": round(first_wave[len(first_wave) // 2], 3) if first_wave else None,
        "first_wave_max_s": round(first_wave[-1], 3) if first_wave else None,
        "elapsed_s": round(elapsed, 2),
        "connections_per_worker": per_worker,
        "active_workers": sum(1 for n in per_worker.values() if n) or None,
    }


if __name__ == "__main__":
    sys.exit(main())
