"""Slow-stream soak: N concurrent streams of S seconds (one event per second) through ONE worker.

    .venv/bin/python -m bench.soak --streams 1000 --seconds 60     # the target run (~75 s)
    .venv/bin/python -m bench.soak --streams 100 --seconds 10      # a quick trial

Starts the fake SAP AI Core (``bench.fake``) answering every stream with one event per
``--interval`` seconds for ``--seconds`` in all, and the gateway under
``gunicorn -c gunicorn.conf.py wsgi:app`` with ``WEB_CONCURRENCY=1``; opens the N streams from
this gevent process (spread over ``--ramp-seconds``), reads them to the end and reports errors,
completed streams, the gateway tree's peak RSS and CPU, pings received (none are needed when an
event arrives every second: the gateway pings after 10 s of silence) and the longest silence a
client saw.
"""

from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402

from bench import procs, report  # noqa: E402
from bench.client import Conn, build_request, perf  # noqa: E402
from bench.stats import percentile  # noqa: E402

RESULTS_DIR = procs.ROOT / "bench" / "results"


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.soak", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--streams", type=int, default=1000, help="concurrent streams (N)")
    p.add_argument("--seconds", type=float, default=60.0, help="duration of each stream")
    p.add_argument("--interval", type=float, default=1.0, help="seconds between events")
    p.add_argument("--workers", type=int, default=1, help="gunicorn workers")
    p.add_argument("--ramp-seconds", type=float, default=5.0,
                   help="open the streams evenly over this many seconds (0: all at once)")
    p.add_argument("--rss-limit-mb", type=float, default=300.0, help="target: peak RSS of the gateway tree")
    p.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE")
    p.add_argument("--config-extra", default="{}", help="JSON object merged into the gateway config")
    p.add_argument("--json", type=Path, help="write results here (default bench/results/soak-<time>.json)")
    p.add_argument("--keep-logs", action="store_true")
    return p.parse_args(argv)


def main(argv=None) -> int:
    args = parse_args(argv)
    procs.install_signal_exit()
    nofile = procs.raise_nofile(args.streams * 3 + 1024)  # LG, gateway (2 per stream) and fake inherit
    if nofile < args.streams * 2 + 256:
        print(f"warning: RLIMIT_NOFILE is {nofile}; {args.streams} streams need about {args.streams * 2 + 256}")
    events = max(6, round(args.seconds / args.interval))  # one event per interval, the first after one
    chunks = events - 5  # message_start, block start, <chunks> text deltas, block stop, delta, stop
    timeout = args.seconds + 60
    wd = procs.workdir("gateway-soak-")
    started = datetime.datetime.now(datetime.timezone.utc)
    print(f"soak: {args.streams} streams x {events * args.interval:.0f} s ({events} events, one per "
          f"{args.interval} s), {args.workers} worker(s), ramp {args.ramp_seconds} s, nofile {nofile}", flush=True)
    result: dict = {"meta": {"started": started.isoformat(timespec="seconds"), "args": {
        k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}, "nofile": nofile,
        "events_per_stream": events, "cpus": os.cpu_count()}}
    try:
        fake = procs.start_fake(wd, ttft=args.interval, chunks=chunks, interval=args.interval)
        env = {"WEB_CONCURRENCY": str(args.workers), **dict(kv.split("=", 1) for kv in args.gateway_env)}
        gateway = procs.start_gateway(fake, wd, workers=args.workers, env=env,
                                      config_extra=json.loads(args.config_extra))
        result.update(run_soak(args, fake, gateway, events, timeout))
        result["gateway_log"] = gateway.log_counts()
    finally:
        procs.stop_all()
    targets = [
        {"target": f"0 errors, {args.streams} x {args.seconds:.0f} s streams, {args.workers} worker(s)",
         "measured": f"{result['errors']} errors, {result['completed']} completed",
         "pass": result["errors"] == 0 and result["completed"] == args.streams},
        {"target": f"gateway tree peak RSS <= {args.rss_limit_mb:.0f} MB",
         "measured": f"{result['rss_peak_mb']} MB (PSS {result['pss_peak_mb']} MB, idle {result['rss_idle_mb']} MB)",
         "pass": result["rss_peak_mb"] <= args.rss_limit_mb},
        {"target": "no pings needed (an event every second)",
         "measured": f"{result['pings']} pings, longest silence {result['max_gap_s']} s",
         "pass": result["pings"] == 0},
    ]
    result["targets"] = targets
    path = args.json or RESULTS_DIR / f"soak-{started.strftime('%Y%m%d-%H%M%S')}.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(result, indent=2, default=str))
    rows = [
        ["streams opened / completed", f"{result['opened']} / {result['completed']}"],
        ["errors", f"{result['errors']} {result['error_kinds'] or ''}".strip()],
        ["max concurrent streams (client / fake)", f"{result['max_in_flight']} / {result['fake_max_open_streams']}"],
        ["stream duration p50 / max (s)", f"{result['duration_p50_s']} / {result['duration_max_s']}"],
        ["time to first event p50 / max (s)", f"{result['tfce_p50_s']} / {result['tfce_max_s']}"],
        ["longest silence seen by a client (s)", str(result["max_gap_s"])],
        ["pings received", str(result["pings"])],
        ["gateway tree RSS idle / peak (MB)", f"{result['rss_idle_mb']} / {result['rss_peak_mb']}"],
        ["gateway tree PSS peak (MB)", str(result["pss_peak_mb"])],
        ["gateway CPU s (total / ms per stream / avg % of a core)",
         f"{result['gw_cpu_s']} / {result['gw_cpu_ms_per_stream']} / {result['gw_cpu_pct']}"],
        ["fake CPU s / load generator CPU s", f"{result['fake_cpu_s']} / {result['lg_cpu_s']}"],
        ["gateway log WARNING / ERROR lines", f"{result['gateway_log']['counts']['WARNING']} / "
         f"{result['gateway_log']['counts']['ERROR']}"],
        ["wall time (s)", str(result["wall_s"])],
    ]
    print("\n" + report.table(["soak", "value"], rows))
    first = result["gateway_log"]["first"]
    if first:
        print("\nfirst gateway log lines per level: " + json.dumps(first, indent=1))
    print("\n" + report.targets_table(targets))
    print(f"\nJSON: {path}")
    if not args.keep_logs:
        import shutil

        shutil.rmtree(wd, ignore_errors=True)
    else:
        print(f"logs kept in {wd}")
    return 0 if all(t["pass"] for t in targets) else 1


def run_soak(args, fake: procs.Fake, gateway: procs.Gateway, events: int, timeout: float) -> dict:
    gw = urlsplit(gateway.url)
    body = json.dumps({"model": procs.SONNET, "max_tokens": 1024, "stream": True,
                       "messages": [{"role": "user", "content": "Say hello slowly."}]}).encode()
    payload = build_request("POST", "/v1/messages", gw.netloc, [
        ("Authorization", f"Bearer {procs.GATEWAY_KEY}"), ("Content-Type", "application/json"),
        ("anthropic-version", "2023-06-01")], body)
    # One non-streaming request first (the fake answers it at once): the worker fetches its
    # token and warms up outside the measurement.
    warm_body = json.dumps({**json.loads(body), "stream": False}).encode()
    warm_req = build_request("POST", "/v1/messages", gw.netloc, [
        ("Authorization", f"Bearer {procs.GATEWAY_KEY}"), ("Content-Type", "application/json")], warm_body)
    warm = Conn(gw.hostname, gw.port, timeout=timeout).request(warm_req, None, b'"content"')
    if not warm.ok:
        raise RuntimeError(f"warm-up stream failed: {warm.error} {warm.sample!r}\n{gateway.log_tail()}")
    sampler = procs.TreeSampler(gateway.pid).start()
    fake_sampler = procs.TreeSampler(fake.pid, period=0.5).start()
    sampler.reset()
    rss_idle = sampler.rss_last
    http_json = procs.http_json
    http_json(fake.url + "/bench/reset-max", "POST", b"")
    results: list = []
    in_flight = [0, 0]  # now, max
    opened = [0]
    gw0, fk0, lg0 = procs.tree_cpu(gateway.pid), procs.tree_cpu(fake.pid), os.times()
    t0 = perf()
    hard_end = t0 + args.ramp_seconds + timeout + 30

    def one(delay: float) -> None:
        gevent.sleep(delay)
        if perf() > hard_end:
            return
        conn = Conn(gw.hostname, gw.port, timeout=timeout)
        opened[0] += 1
        in_flight[0] += 1
        in_flight[1] = max(in_flight[1], in_flight[0])
        start = perf()
        try:
            res = conn.request(payload, b"content_block_delta", b"message_stop", b"event: error",
                               track_gaps=True, count_events=True)
        finally:
            in_flight[0] -= 1
            conn.close()
        res.sample = res.sample[:200]
        results.append((res, perf() - start))

    step = args.ramp_seconds / max(1, args.streams)
    greenlets = [gevent.spawn(one, i * step) for i in range(args.streams)]

    def progress() -> None:
        last_cpu, last_t = gw0, perf()
        while True:
            gevent.sleep(5)
            cpu, now = procs.tree_cpu(gateway.pid), perf()
            print(f"  t={now - t0:5.0f} s  open {in_flight[0]:5d}  done {len(results):5d}  "
                  f"gateway RSS {sampler.rss_last / 1024:6.1f} MB (peak {sampler.rss_peak / 1024:.1f})  "
                  f"CPU {100 * (cpu - last_cpu) / (now - last_t):5.1f} %", flush=True)
            last_cpu, last_t = cpu, now

    ticker = gevent.spawn(progress)
    gevent.joinall(greenlets, timeout=hard_end - perf())
    ticker.kill()
    for g in greenlets:
        if not g.dead:
            g.kill(block=False)
    wall = perf() - t0
    gw1, fk1, lg1 = procs.tree_cpu(gateway.pid), procs.tree_cpu(fake.pid), os.times()
    peak = sampler.peak()
    sampler.stop()
    fake_sampler.stop()
    fstats = fake.stats() or {}
    ok = [r for r, _ in results if r.ok]
    errors: dict[str, int] = {}
    samples: dict[str, str] = {}
    for r, _ in results:
        if not r.ok:
            errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1
            samples.setdefault(r.error or "?", r.sample.decode("utf-8", "replace"))
    missing = args.streams - len(results)
    if missing:
        errors["not finished"] = missing
    durations = [d for r, d in results if r.ok]
    tfces = [r.tfce for r in ok if r.tfce is not None]
    gw_cpu = gw1 - gw0
    r2 = lambda v: None if v is None else round(v, 2)  # noqa: E731
    return {
        "opened": opened[0], "completed": len(ok), "errors": sum(errors.values()),
        "error_kinds": errors, "error_samples": samples,
        "max_in_flight": in_flight[1], "fake_max_open_streams": fstats.get("max_open_streams"),
        "duration_p50_s": r2(percentile(durations, 50)), "duration_max_s": r2(max(durations, default=None)),
        "tfce_p50_s": r2(percentile(tfces, 50)), "tfce_max_s": r2(max(tfces, default=None)),
        "max_gap_s": r2(max((r.max_gap for r in ok), default=None)),
        "gap_p99_s": r2(percentile([r.max_gap for r in ok], 99)),
        "pings": sum(r.pings for r, _ in results),
        "events_min": min((r.events for r in ok), default=None), "events_expected": events,
        "rss_idle_mb": round(rss_idle / 1024, 1), **peak,
        "gw_cpu_s": round(gw_cpu, 2), "gw_cpu_ms_per_stream": round(gw_cpu * 1000 / max(1, len(results)), 2),
        "gw_cpu_pct": round(100 * gw_cpu / wall, 1),
        "fake_cpu_s": round(fk1 - fk0, 2), "fake_rss_peak_mb": round(fake_sampler.rss_peak / 1024, 1),
        "lg_cpu_s": round((lg1.user - lg0.user) + (lg1.system - lg0.system), 2),
        "wall_s": round(wall, 1), "fake_stats": fstats,
    }


if __name__ == "__main__":
    sys.exit(main())
