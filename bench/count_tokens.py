"""``count_tokens`` speed on a real ~80 KB Claude Code body (no network, no gevent).

    .venv/bin/python -m bench.count_tokens

Times :func:`app.translate.token_count.estimate_input_tokens` on the parsed body (median of many
runs), then the whole ``POST /v1/messages/count_tokens`` route through Flask's test client
(JSON parsing, authentication, the estimate and the response; the test client adds its own
fraction of a millisecond, shown by timing ``GET /health`` the same way). Target: the estimate
<= 2 ms.
"""

from __future__ import annotations

import argparse
import gc
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

from bench import report
from bench.procs import GATEWAY_KEY, ROOT
from bench.stats import percentile

DEFAULT_BODY = ROOT / "tests" / "fixtures" / "claude-code" / "2.1.332" / "no_toolsearch.jsonl"


def timed(fn, runs: int, warmup: int = 20) -> list[float]:
    for _ in range(warmup):
        fn()
    out = []
    gc.disable()
    try:
        for _ in range(runs):
            t0 = time.perf_counter()
            fn()
            out.append(time.perf_counter() - t0)
    finally:
        gc.enable()
    return out


def summary(name: str, samples: list[float]) -> list[str]:
    ms = [s * 1000 for s in samples]
    return [name, f"{min(ms):.3f}", f"{statistics.median(ms):.3f}", f"{percentile(ms, 90):.3f}",
            f"{max(ms):.3f}"]


def make_app(tmp: Path):
    """The gateway's Flask app with a config that needs no network for count_tokens."""
    from app import create_app
    from app.config import settings_from_file

    key = {"clientid": "bench", "clientsecret": "bench", "url": "http://127.0.0.1:9/auth",
           "serviceurls": {"AI_API_URL": "http://127.0.0.1:9"}}
    (tmp / "key.json").write_text(json.dumps(key))
    config = {"subAccounts": {"sub1": {"resource_group": "default", "service_key_json": "key.json",
                                       "deployment_models": {"anthropic--claude-4.5-sonnet": [
                                           "http://127.0.0.1:9/v2/inference/deployments/d1"]}}},
              "secret_authentication_tokens": [GATEWAY_KEY], "token_usage_log": str(tmp / "usage.log")}
    (tmp / "config.json").write_text(json.dumps(config))
    return create_app(settings_from_file(tmp / "config.json", {}))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.count_tokens", description=__doc__.splitlines()[0])
    p.add_argument("--body", type=Path, default=DEFAULT_BODY, help="a .jsonl line with 'body', or a .json body")
    p.add_argument("--runs", type=int, default=500)
    p.add_argument("--limit-ms", type=float, default=2.0)
    p.add_argument("--json", type=Path)
    args = p.parse_args(argv)
    if not args.body.exists():
        print(f"no body at {args.body} (use --body)", file=sys.stderr)
        return 2
    text = args.body.read_text()
    first = json.loads(text.splitlines()[0] if args.body.suffix == ".jsonl" else text)
    body = first.get("body", first)
    body = {k: v for k, v in body.items() if k != "stream"}
    raw = json.dumps(body).encode()

    from app import runtime
    from app.translate.token_count import estimate_input_tokens
    from app.wire.jsoncodec import loads

    tokens = estimate_input_tokens(body)
    est = timed(lambda: estimate_input_tokens(body), args.runs)
    parse = timed(lambda: loads(raw), args.runs)
    with tempfile.TemporaryDirectory(prefix="bench-count-tokens-") as tmp:
        app = make_app(Path(tmp))
        client = app.test_client()
        headers = {"Authorization": f"Bearer {GATEWAY_KEY}", "Content-Type": "application/json",
                   "anthropic-version": "2023-06-01"}
        answer = client.post("/v1/messages/count_tokens", data=raw, headers=headers)
        assert answer.status_code == 200, answer.get_data()[:300]
        route = timed(lambda: client.post("/v1/messages/count_tokens", data=raw, headers=headers), args.runs // 2)
        health = timed(lambda: client.get("/health"), args.runs // 2)
        runtime.install(None)
    rows = [summary("estimate_input_tokens(body)", est), summary("jsoncodec.loads(raw body), as the route parses it", parse),
            summary("POST /v1/messages/count_tokens (test client)", route),
            summary("GET /health (test client overhead)", health)]
    print(f"body: {args.body.name}, {len(raw)} bytes, estimate {tokens} tokens, {args.runs} runs\n")
    print(report.table(["what", "min ms", "median ms", "p90 ms", "max ms"], rows))
    median_ms = statistics.median(est) * 1000
    route_ms = statistics.median(route) * 1000
    targets = [{"target": f"count_tokens estimate on an {len(raw) // 1000} KB body <= {args.limit_ms} ms (median)",
                "measured": f"{median_ms:.3f} ms (whole route {route_ms:.3f} ms)",
                "pass": median_ms <= args.limit_ms}]
    print("\n" + report.targets_table(targets))
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(json.dumps({"body_bytes": len(raw), "tokens": tokens, "rows": rows,
                                         "targets": targets}, indent=2))
    return 0 if targets[0]["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
