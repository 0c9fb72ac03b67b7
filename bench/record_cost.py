"""Per-request cost of the gateway's bookkeeping: RequestRecord + finish (metrics, access
line, usage line), measured with timeit, in-process and in prometheus multiprocess mode.

    .venv/bin/python -m bench.record_cost

Each configuration runs in a fresh interpreter (prometheus_client picks its value class
at import, from PROMETHEUS_MULTIPROC_DIR). The access line goes to /dev/null through the
gateway's own handler and formatter; the usage line to a file in a temporary directory.
Prints the best of 5 repeats, in microseconds per request.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile

N = 20000

CHILD = r"""
import logging, os, sys, tempfile, timeit
from app import metrics
from app.log import RequestRecord, configure_logging, setup_usage_log

fmt, level, multiproc = sys.argv[1], sys.argv[2], sys.argv[3] == "1"
configure_logging(level, fmt)
root = logging.getLogger()
next(h for h in root.handlers if getattr(h, "gateway_handler", False)).setStream(
    open(os.devnull, "w"))
tmp = tempfile.mkdtemp()
setup_usage_log(os.path.join(tmp, "token_usage.log"))
assert metrics.current().multiprocess is multiproc
USAGE = {"input_tokens": 1200, "output_tokens": 80, "cache_read_input_tokens": 30000,
         "cache_creation_input_tokens": 500}

def one():
    r = RequestRecord("req_0123456789abcdef01234567", "POST", "/v1/messages", "/v1/messages",
                      "10.0.0.7", "claude-cli/2.1.3 (external, cli)")
    r.key_label = "team-a"; r.session_id = "sess"; r.model = "claude-sonnet-4-5"
    r.sap_model = "anthropic--claude-4.5-sonnet"; r.deployment = "d123"; r.stream = True
    r.usage = USAGE; r.upstream_ttfb = 0.0001; r.in_flight = True
    metrics.stream_started()
    r.mark_first_event(); r.finish(200)

rec = RequestRecord("req_x", "POST", "/v1/messages", "/v1/messages")
rec.sap_model, rec.key_label, rec.deployment, rec.status = "m", "team-a", "d1", 200
rec.usage, rec.upstream_ttfb, rec.first_event_at = USAGE, 0.0001, rec.started + 0.001
m = metrics.current()
n = int(sys.argv[4])
whole = min(timeit.repeat(one, number=n, repeat=5)) / n * 1e6
only = min(timeit.repeat(lambda: m.record(rec), number=n, repeat=5)) / n * 1e6
print(f"{whole:.1f} {only:.1f}")
"""


def measure(fmt: str, level: str, multiproc: bool) -> tuple[float, float]:
    env = {k: v for k, v in os.environ.items() if k != "PROMETHEUS_MULTIPROC_DIR"}
    with tempfile.TemporaryDirectory() as prom:
        if multiproc:
            env["PROMETHEUS_MULTIPROC_DIR"] = prom
        out = subprocess.run([sys.executable, "-c", CHILD, fmt, level, "1" if multiproc else "0",
                              str(N)], env=env, capture_output=True, text=True, timeout=600,
                             check=True, cwd=os.path.dirname(os.path.dirname(__file__)))
    whole, only = out.stdout.split()
    return float(whole), float(only)


def main() -> None:
    print("| metrics mode | log format | level | record+finish µs | metrics.record µs |")
    print("| --- | --- | --- | ---: | ---: |")
    for multiproc in (True, False):
        for fmt, level in (("text", "INFO"), ("json", "INFO"), ("text", "WARNING")):
            whole, only = measure(fmt, level, multiproc)
            mode = "multiprocess (gunicorn)" if multiproc else "in-process"
            print(f"| {mode} | {fmt} | {level} | {whole:.1f} | {only:.1f} |")


if __name__ == "__main__":
    main()
