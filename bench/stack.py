"""What the gateway's stack costs before the gateway does anything: bare relays beside it.

    .venv/bin/python -m bench.stack                          # cc-stream, c=50, about 2 min
    .venv/bin/python -m bench.stack --scenario small-stream --rounds 4

One fake SAP AI Core (``bench.fake``) serves, in rotating rounds under the same load: the
load generator directly, the gateway (``gunicorn -c gunicorn.conf.py wsgi:app``), and the three
bare relays of :mod:`bench.bare_relays` under gunicorn's gevent workers (the same worker count,
``--worker-connections 2000``, keep-alive 5 s). The relays parse, reshape, serialize, post and
relay, and nothing else. The report gives each side's req/s and its ratio to direct, CPU per
request (the side's whole process tree; for direct, the fake's) and p50.

On a machine where all of them share the cores, a side's req/s falls as its CPU per request
grows; the relay in Flask with ``requests`` is the most any gateway of that design can reach
here. Loopback only; every round is bounded in requests and seconds.
"""

# The load generator is one gevent process: patch before anything imports socket/threading.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import os  # noqa: E402
import shutil  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

from bench import procs  # noqa: E402
from bench.ab import add_round_options, measure, request_bytes  # noqa: E402
from bench.client import Conn  # noqa: E402
from bench.run import PROFILES, SCENARIOS, direct_request, run_load  # noqa: E402
from bench.stats import median  # noqa: E402

RELAYS = {
    "flask+requests": "bench.bare_relays:flask_requests",
    "wsgi+requests": "bench.bare_relays:wsgi_requests",
    "wsgi+socket": "bench.bare_relays:wsgi_socket",
}


@dataclass
class Side:
    name: str
    pid: int  # root of the process tree whose CPU is counted
    pool: list
    payload: tuple[bytes, ...]


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.stack", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    add_round_options(p, [name for name, s in SCENARIOS.items()
                          if s.api == "messages" and s.body != "cc-mix"], rounds=5)
    return p.parse_args(argv)


def start_relay(name: str, target: str, fake: procs.Fake, token: str, workers: int,
                wd: Path) -> tuple[str, int]:
    """A bare relay under gunicorn's gevent workers: its address and pid."""
    port = procs.free_port()
    empty_conf = wd / "bare.conf.py"  # not ./gunicorn.conf.py, which gunicorn reads by default
    empty_conf.write_text("")
    env = {**os.environ, "BARE_UPSTREAM": fake.deployment_url, "BARE_TOKEN": token,
           "PYTHONPATH": str(procs.ROOT)}
    proc = procs.spawn([procs.PYTHON, "-m", "gunicorn", "-c", str(empty_conf), "-k", "gevent",
                        "-w", str(workers), "--worker-connections", "2000", "--keep-alive", "5",
                        "-b", f"127.0.0.1:{port}", target], env, wd / f"{name}.log",
                       cwd=procs.ROOT)
    return f"127.0.0.1:{port}", proc.pid


def wait_serving(host: str, pid: int, workers: int, timeout: float = 30.0) -> None:
    """Until the server answers HTTP (any status), its workers are up and its CPU is quiet."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            procs.http_call(f"http://{host}/", timeout=1)
            if len(procs.tree_pids(pid)) > workers:
                procs.wait_quiet(pid, deadline=deadline)
                return
        except OSError:
            pass
        time.sleep(0.1)
    raise RuntimeError(f"the bare relay on {host} did not start")


def connections(host: str, count: int, timeout: float) -> list:
    hostname, port = host.rsplit(":", 1)
    return [Conn(hostname, int(port), timeout=timeout) for _ in range(count)]


def main(argv=None) -> int:
    args = parse_args(argv)
    procs.install_signal_exit()
    procs.raise_nofile(8192)
    scen = SCENARIOS[args.scenario]
    wd = procs.workdir("gateway-stack-")
    try:
        prof = PROFILES[args.profile]
        fake = procs.start_fake(wd, ttft=prof["ttft"], chunks=prof["chunks"],
                                interval=prof["interval"])
        token = fake.token()
        gw = procs.start_gateway(fake, wd, workers=args.workers)
        gw_host = urlsplit(gw.url).netloc
        sides = [Side("gateway", gw.pid, connections(gw_host, args.concurrency, args.timeout),
                      request_bytes(args, gw_host))]
        run_load(sides[0].pool, sides[0].payload, 1.0, 2 * args.concurrency, args.max_requests, 3.0,
                 None, None, None, args.timeout)  # warm-up; the fake keeps the body sent upstream
        fake_url = urlsplit(fake.url)
        direct = direct_request(scen, urlsplit(fake.deployment_url).path, fake_url.netloc, token,
                                fake.last_body(scen.suffix))
        sides.insert(0, Side("direct", fake.pid, connections(fake_url.netloc, args.concurrency,
                                                             args.timeout), (direct,)))
        for name, target in RELAYS.items():
            host, pid = start_relay(name, target, fake, token, args.workers, wd)
            wait_serving(host, pid, args.workers)
            sides.append(Side(name, pid, connections(host, args.concurrency, args.timeout),
                              request_bytes(args, host)))
        for side in sides:
            run_load(side.pool, side.payload, 1.0, 2 * args.concurrency, args.max_requests, 3.0,
                     None, None, None, args.timeout)  # warm-up: connections, pools, tokens
        print(f"bench.stack: {args.profile}/{args.scenario}, c={args.concurrency}, {args.workers} "
              f"workers each, {args.rounds} x {args.round_seconds} s per side", flush=True)
        rounds: dict[str, list[dict]] = {side.name: [] for side in sides}
        for i in range(args.rounds):
            order = sides[i % len(sides):] + sides[:i % len(sides)]  # who goes first rotates
            for side in order:
                rounds[side.name].append(measure(side.pid, side.pool, side.payload, args,
                                                 scen.stream))
            print(f"  round {i + 1}: " + "  ".join(
                f"{s.name} {rounds[s.name][-1]['rps']:.0f}/s" for s in sides), flush=True)
        print(report(rounds))
    finally:
        procs.stop_all()
        shutil.rmtree(wd, ignore_errors=True)
    return 0


def report(rounds: dict[str, list[dict]]) -> str:
    direct = median(r["rps"] for r in rounds["direct"]) or 0.0
    lines = ["| side | req/s | / direct | CPU ms per request | p50 ms | errors |",
             "| --- | --- | --- | --- | --- | --- |"]
    for name, rs in rounds.items():
        rps = median(r["rps"] for r in rs) or 0.0
        lines.append(f"| {name} | {rps:.0f} | {rps / direct if direct else 0:.2f} | "
                     f"{median(r['cpu_ms_per_req'] for r in rs):.3f} | "
                     f"{median(r['p50_ms'] for r in rs):.2f} | {sum(r['errors'] for r in rs)} |")
    lines.append("\nCPU: the side's process tree (direct: the fake's); medians of the rounds.")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
