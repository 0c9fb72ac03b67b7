"""Two revisions of the gateway side by side: CPU per request, latency and req/s in one run.

    .venv/bin/python -m bench.ab --base HEAD~1                      # HEAD~1 against this working tree
    .venv/bin/python -m bench.ab --base main --profile llm -c 50 --rounds 8

A change that saves 5 % of the gateway's CPU is invisible between two runs of ``bench.run`` on
this noisy 2-core machine. Here one fake SAP AI Core (``bench.fake``) serves two gateways, each the
real ``gunicorn -c gunicorn.conf.py wsgi:app``: ``base`` runs from a temporary git worktree of
``--base``, ``head`` from this checkout as it is (uncommitted changes included). Rounds alternate
base, head, base, head, ... with the same load, so drift of the machine hits both sides alike, and
the report gives each side's medians and the head/base ratio of each figure. Loopback only; every
round is bounded in requests and seconds.
"""

# The load generator is one gevent process: patch before anything imports socket/threading.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from bench import procs  # noqa: E402
from bench.client import Conn, build_request  # noqa: E402
from bench.run import (ANTHROPIC_MARKER, DEFAULT_CC_BODY, PROFILES, SCENARIOS,  # noqa: E402
                       run_load, scenario_requests)
from bench.stats import median, percentile  # noqa: E402


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.ab", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--base", required=True, help="git revision to compare this working tree with")
    add_round_options(p, [name for name, s in SCENARIOS.items() if s.api == "messages"], rounds=6)
    return p.parse_args(argv)


def add_round_options(p: argparse.ArgumentParser, scenarios: list[str], *, rounds: int) -> None:
    """The load and round options of the side-by-side benchmarks (this one and bench.stack)."""
    p.add_argument("--profile", default="fast", choices=sorted(PROFILES), help="fake profile")
    p.add_argument("--scenario", default="cc-stream", choices=scenarios)
    p.add_argument("-c", "--concurrency", type=int, default=50)
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers of each server")
    p.add_argument("--rounds", type=int, default=rounds, help="measured rounds per side")
    p.add_argument("--round-seconds", type=float, default=3.0)
    p.add_argument("--max-requests", type=int, default=50000, help="hard cap per round")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout (s)")
    p.add_argument("--cc-body", type=Path, default=DEFAULT_CC_BODY)


def worktree(revision: str, where: Path) -> Path:
    """A detached checkout of ``revision`` (removed by :func:`drop_worktree`)."""
    path = where / "base"
    subprocess.run(["git", "worktree", "add", "--detach", "--force", str(path), revision],
                   cwd=procs.ROOT, check=True, capture_output=True, timeout=60)
    return path


def drop_worktree(path: Path) -> None:
    subprocess.run(["git", "worktree", "remove", "--force", str(path)], cwd=procs.ROOT,
                   capture_output=True, timeout=60)


def request_bytes(args, host: str) -> tuple[bytes, ...]:
    """The scenario's gateway requests, sent in turn (several for cc-mix-stream)."""
    scen = SCENARIOS[args.scenario]
    out = []
    for body, headers, path in scenario_requests(scen, procs.SONNET, args.cc_body):
        raw = json.dumps(dict(body, stream=scen.stream), ensure_ascii=False,
                         separators=(",", ":")).encode()
        out.append(build_request("POST", path, host, [("Authorization", f"Bearer {procs.GATEWAY_KEY}")]
                                 + headers, raw))
    return tuple(out)


def measure(pid: int, pool: list, payload: tuple[bytes, ...], args, stream: bool) -> dict:
    """One round of load on ``pool``; CPU is that of the process tree under ``pid``."""
    marker = ANTHROPIC_MARKER if stream else None
    expect = b"message_stop" if stream else b'"content"'
    fail = b"event: error" if stream else None
    gc.collect()
    cpu0 = procs.tree_cpu(pid)
    gc.disable()
    try:
        results, wall = run_load(pool, payload, args.round_seconds, 2 * len(pool), args.max_requests,
                                 2 * args.round_seconds, marker, expect, fail, args.timeout)
    finally:
        gc.enable()
    cpu = procs.tree_cpu(pid) - cpu0
    ok = [r for r in results if r.ok]
    return {"requests": len(results), "errors": len(results) - len(ok),
            "rps": len(ok) / wall if wall else 0.0,
            "cpu_ms_per_req": cpu * 1000 / max(1, len(results)),
            "p50_ms": (percentile([r.total for r in ok], 50) or 0) * 1000,
            "p99_ms": (percentile([r.total for r in ok], 99) or 0) * 1000}


def main(argv=None) -> int:
    args = parse_args(argv)
    procs.install_signal_exit()
    procs.raise_nofile(8192)
    wd = procs.workdir("gateway-ab-")
    base_root = None
    try:
        base_root = worktree(args.base, wd)
        prof = PROFILES[args.profile]
        fake = procs.start_fake(wd, ttft=prof["ttft"], chunks=prof["chunks"], interval=prof["interval"])
        sides = {}
        for name, root in (("base", base_root), ("head", procs.ROOT)):
            side_wd = wd / ("gw-" + name)
            side_wd.mkdir()
            sides[name] = procs.start_gateway(fake, side_wd, workers=args.workers, root=root)
        stream = SCENARIOS[args.scenario].stream
        pools, payloads = {}, {}
        for name, gw in sides.items():
            url = urlsplit(gw.url)
            pools[name] = [Conn(url.hostname, url.port, timeout=args.timeout)
                           for _ in range(args.concurrency)]
            payloads[name] = request_bytes(args, url.netloc)
            run_load(pools[name], payloads[name], 1.0, 2 * args.concurrency, args.max_requests, 3.0,
                     None, None, None, args.timeout)  # warm-up: connections, caches, tokens
        print(f"bench.ab: base {args.base} vs head (this working tree), {args.profile}/{args.scenario}, "
              f"c={args.concurrency}, {args.workers} workers each, {args.rounds} x {args.round_seconds} s "
              "per side", flush=True)
        rounds = {"base": [], "head": []}
        for i in range(args.rounds):
            for name in (("base", "head") if i % 2 == 0 else ("head", "base")):
                rounds[name].append(measure(sides[name].pid, pools[name], payloads[name], args,
                                            stream))
            print(f"  round {i + 1}: " + "  ".join(
                f"{n} {rounds[n][-1]['cpu_ms_per_req']:.3f} ms CPU/req {rounds[n][-1]['rps']:.0f} req/s"
                for n in ("base", "head")), flush=True)
        print(report(rounds))
    finally:
        procs.stop_all()
        if base_root is not None:
            drop_worktree(base_root)
        shutil.rmtree(wd, ignore_errors=True)
    return 0


def report(rounds: dict) -> str:
    lines = ["| figure | base | head | head / base |", "| --- | --- | --- | --- |"]
    for key, label in (("cpu_ms_per_req", "gateway CPU ms per request"), ("rps", "req/s"),
                       ("p50_ms", "p50 ms"), ("p99_ms", "p99 ms")):
        b = median(r[key] for r in rounds["base"])
        h = median(r[key] for r in rounds["head"])
        lines.append(f"| {label} (median of rounds) | {b:.3f} | {h:.3f} | {h / b if b else 0:.3f} |")
    errors = {n: sum(r["errors"] for r in rs) for n, rs in rounds.items()}
    lines.append(f"| errors (all rounds) | {errors['base']} | {errors['head']} | |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
