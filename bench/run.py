"""Latency/throughput benchmark: the gateway against the fake SAP AI Core, and the fake directly.

    .venv/bin/python -m bench.run --quick      # ~1-2 minutes, for iterating
    .venv/bin/python -m bench.run              # the full matrix, ~10-15 minutes

For each fake profile it starts (on 127.0.0.1) the fake SAP AI Core (``bench.fake``, i.e. the test
fake) and the gateway under the real ``gunicorn -c gunicorn.conf.py wsgi:app`` (gevent workers),
then for every (scenario, concurrency) cell runs R alternating rounds, direct then gateway, and
reports medians of the per-round figures and the differences (gateway - direct). See
bench/README.md for what every column means.
"""

# The load generator is one gevent process: patch before anything imports socket/threading.
from gevent import monkey

monkey.patch_all()

import argparse  # noqa: E402
import datetime  # noqa: E402
import gc  # noqa: E402
import json  # noqa: E402
import os  # noqa: E402
import platform  # noqa: E402
import subprocess  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402
from typing import Optional  # noqa: E402
from urllib.parse import urlsplit  # noqa: E402

import gevent  # noqa: E402

from bench import procs, report  # noqa: E402
from bench.client import Conn, build_request, perf  # noqa: E402
from bench.stats import diff, median, ms, percentile  # noqa: E402

FIXTURE_DIR = procs.ROOT / "tests" / "fixtures" / "claude-code" / "2.1.332"  # copies of ../shared
DEFAULT_CC_BODY = FIXTURE_DIR / "no_toolsearch.jsonl"
BEDROCK_VERSION = "bedrock-2023-05-31"
RESULTS_DIR = procs.ROOT / "bench" / "results"

#: Fake SAP AI Core profiles: time to first token (s), text_delta events, seconds between events.
PROFILES = {
    "fast": {"ttft": 0.0, "chunks": 4, "interval": 0.0},      # no delays: pure overhead/throughput
    "llm": {"ttft": 0.05, "chunks": 20, "interval": 0.005},   # a (very fast) model's pace
}


@dataclass(frozen=True)
class Scenario:
    name: str
    body: str       # "small", "cc" (a real Claude Code body) or "cc-mix" (all recorded ones in turn)
    stream: bool
    api: str = "messages"  # "messages" (/v1/messages) or "chat" (/v1/chat/completions)

    @property
    def suffix(self) -> str:
        return "invoke-with-response-stream" if self.stream else "invoke"


SCENARIOS = {s.name: s for s in (
    Scenario("small", "small", False),
    Scenario("small-stream", "small", True),
    Scenario("cc", "cc", False),
    Scenario("cc-stream", "cc", True),
    # Every recorded Claude Code turn in turn: tool results, web search, a first turn, a
    # short follow-up (49-78 KB, and two of about 1-3 KB), as a fleet sends them.
    Scenario("cc-mix-stream", "cc-mix", True),
    # Streaming /v1/chat/completions (OpenAI chunks translated from the Bedrock stream). A
    # gateway that answers 404 there is reported as "not available".
    Scenario("chat-stream", "small", True, api="chat"),
)}

FULL_PLAN = {
    "fast": ["small", "small-stream", "cc", "cc-stream", "cc-mix-stream", "chat-stream"],
    "llm": ["small-stream", "cc-stream"],
}
QUICK_PLAN = {
    "fast": ["small", "small-stream", "cc", "cc-stream"],
    "llm": ["small-stream", "cc-stream"],
}
QUICK_CONCURRENCY = {"fast": [1, 10, 50], "llm": [50]}
FULL_CONCURRENCY = [1, 10, 50, 200]

ANTHROPIC_MARKER = b"content_block_delta"
CHAT_MARKER = b'"content":"'  # first chunk with text (role-only first chunks have no text)


# ------------------------------------------------------------------------------ request bodies


def load_cc_body(path: Path) -> tuple[dict, list[tuple[str, str]], str]:
    """A recorded Claude Code request: (body, headers to replay, path)."""
    text = path.read_text()
    return load_cc_body_record(json.loads(text.splitlines()[0] if path.suffix == ".jsonl" else text))


def load_cc_body_record(first: dict) -> tuple[dict, list[tuple[str, str]], str]:
    body = first.get("body", first)
    skip = {"host", "content-length", "authorization", "x-api-key", "connection", "accept-encoding"}
    headers = [(k, v) for k, v in first.get("headers", []) if k.lower() not in skip]
    if not headers:
        headers = [("Content-Type", "application/json"), ("anthropic-version", "2023-06-01")]
    return body, headers, first.get("path", "/v1/messages")


def recorded_cc_requests(model: str) -> list[tuple[dict, list[tuple[str, str]], str]]:
    """Every recorded Claude Code ``/v1/messages`` request under FIXTURE_DIR's parent (all
    versions), its model set to ``model`` (the one deployment the fake serves)."""
    out = []
    for path in sorted(FIXTURE_DIR.parent.glob("*/*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if not rec.get("path", "").startswith("/v1/messages") or "count_tokens" in rec["path"]:
                continue
            body, headers, req_path = load_cc_body_record(rec)
            out.append((dict(body, model=model), headers, req_path))
    return out


def small_body(model: str) -> dict:
    return {"model": model, "max_tokens": 1024,
            "messages": [{"role": "user", "content": "Say hello in one short sentence."}]}


SMALL_HEADERS = [("Content-Type", "application/json"), ("anthropic-version", "2023-06-01"),
                 ("Accept", "application/json"), ("User-Agent", "gateway-bench")]


def scenario_requests(scen: Scenario, model: str,
                      cc_body: Path) -> list[tuple[dict, list[tuple[str, str]], str]]:
    """A scenario's Anthropic requests, sent in turn: (body, headers to replay, path) each."""
    if scen.body == "cc":
        return [load_cc_body(cc_body)]
    if scen.body == "cc-mix":
        return recorded_cc_requests(model)
    return [(small_body(model), SMALL_HEADERS, "/v1/messages")]


def direct_request(scen: Scenario, dep_path: str, fake_host: str, token: str,
                   body: bytes) -> bytes:
    """``body`` posted straight to the fake's deployment, with the headers the gateway sends."""
    return build_request("POST", f"{dep_path}/{scen.suffix}", fake_host, [
        ("Authorization", f"Bearer {token}"), ("AI-Resource-Group", "default"),
        ("Content-Type", "application/json"),
        ("Accept", "text/event-stream" if scen.stream else "application/json"),
        ("AI-Client-Type", "sap-aicore-gateway")], body)


def bedrock_shape(body: dict) -> dict:
    """What the gateway sends, roughly (used only when the fake cannot show the real body)."""
    out = {k: v for k, v in body.items() if k not in ("model", "stream")}
    out["anthropic_version"] = BEDROCK_VERSION
    return out


@dataclass
class Prepared:
    """A scenario's requests, whole HTTP/1.1 requests sent in turn (one, but for cc-mix)."""
    scenario: Scenario
    gateway: tuple[bytes, ...]
    direct: Optional[tuple[bytes, ...]]
    marker: Optional[bytes]
    expect: bytes
    fail: Optional[bytes]
    direct_body_source: str
    gateway_bytes: int  # body bytes, the mean over the requests
    direct_bytes: int


class Context:
    """One profile's running fake + gateway and what is needed to talk to them."""

    def __init__(self, args, profile: str, fake: Optional[procs.Fake], gateway: procs.Gateway,
                 token: Optional[str]) -> None:
        self.args = args
        self.profile = profile
        self.fake = fake
        self.gateway = gateway
        self.token = token
        gw = urlsplit(gateway.url)
        self.gw_addr = (gw.hostname, gw.port)
        self.gw_host = gw.netloc
        if fake is not None:
            fk = urlsplit(fake.url)
            self.fake_addr = (fk.hostname, fk.port)
            self.fake_host = fk.netloc
            self.dep_path = urlsplit(fake.deployment_url).path
        self.prepared: dict[str, Prepared | str] = {}
        self.sampler = procs.TreeSampler(gateway.pid).start()

    def close(self) -> None:
        self.sampler.stop()

    # -------------------------------------------------------------- requests

    def prepare(self, scen: Scenario) -> Prepared | str:
        """Build a scenario's requests and check each answers 200 once (else: the reason)."""
        if scen.name in self.prepared:
            return self.prepared[scen.name]
        args = self.args
        if scen.body == "cc" and not args.cc_body.exists():
            return self._remember(scen, f"no Claude Code body at {args.cc_body} (--cc-body)")
        recorded = scenario_requests(scen, args.model, args.cc_body)
        if not recorded:
            return self._remember(scen, f"no recorded Claude Code requests under {FIXTURE_DIR.parent}")
        if scen.api == "chat":
            marker, expect, fail = (CHAT_MARKER if scen.stream else None), b"[DONE]" if scen.stream else b'"choices"', None
        else:
            marker = ANTHROPIC_MARKER if scen.stream else None
            expect = b"message_stop" if scen.stream else b'"content"'
            fail = b"event: error" if scen.stream else None
        built = []
        for body, headers, path in recorded:
            one = self._prepare_one(scen, dict(body), headers, path, marker, expect, fail)
            if isinstance(one, str):
                return self._remember(scen, one)
            built.append(one)
        direct = tuple(b[1] for b in built) if all(b[1] is not None for b in built) else None
        prepared = Prepared(scen, tuple(b[0] for b in built), direct, marker, expect, fail, built[0][2],
                            sum(b[3] for b in built) // len(built), sum(b[4] for b in built) // len(built))
        self.prepared[scen.name] = prepared
        return prepared

    def _prepare_one(self, scen: Scenario, body: dict, headers: list[tuple[str, str]], path: str,
                     marker, expect, fail) -> tuple[bytes, Optional[bytes], str, int, int] | str:
        """One request through the gateway, then the exact body it sent upstream, direct."""
        args = self.args
        body["stream"] = scen.stream
        if scen.api == "chat":
            path = "/v1/chat/completions"
            body = {"model": body.get("model", args.model), "messages": body["messages"],
                    "max_tokens": 1024, "stream": scen.stream}
            headers = [("Content-Type", "application/json"), ("User-Agent", "gateway-bench")]
        raw = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode()
        gw_req = build_request("POST", path, self.gw_host,
                               [("Authorization", f"Bearer {args.gateway_key}")] + headers, raw)

        probe = Conn(*self.gw_addr, timeout=args.timeout)
        res = probe.request(gw_req, marker, expect, fail)
        probe.close()
        if not res.ok:
            if res.status == 404 and scen.api == "chat":
                return "not available (gateway answered 404)"
            return f"gateway probe failed: {res.error or 'failed'} {res.sample[:200]!r}"

        direct_req, source, direct_len = None, "-", 0
        if self.fake is not None:
            captured = self.fake.last_body(scen.suffix) if self.fake.stats() is not None else None
            if captured is not None:
                dbody, source = captured, "captured from the gateway's upstream call"
            else:
                dbody, source = json.dumps(bedrock_shape(body)).encode(), "model/stream dropped, anthropic_version added"
            direct_len = len(dbody)
            direct_req = direct_request(scen, self.dep_path, self.fake_host, self.token, dbody)
            dmarker = ANTHROPIC_MARKER if scen.stream else None
            dexpect = b"message_stop" if scen.stream else b'"content"'
            probe = Conn(*self.fake_addr, timeout=args.timeout)
            res = probe.request(direct_req, dmarker, dexpect)
            probe.close()
            if not res.ok:
                return f"direct probe failed: {res.error} {res.sample[:200]!r}"
        return gw_req, direct_req, source, len(raw), direct_len

    def _remember(self, scen: Scenario, reason: str) -> str:
        self.prepared[scen.name] = reason
        return reason


# ------------------------------------------------------------------------------ load


def run_load(pool: list[Conn], payload: bytes | tuple[bytes, ...], seconds: float, min_requests: int,
             max_requests: int, hard_seconds: float, marker, expect, fail,
             timeout: float) -> tuple[list, float]:
    """Requests over the pool's connections (one greenlet each) until ``seconds`` have passed
    and at least ``min_requests`` were issued; never more than ``max_requests`` nor longer than
    ``hard_seconds`` (then in-flight requests finish, each bounded by ``timeout``). Several
    payloads are sent in turn."""
    payloads = (payload,) if isinstance(payload, bytes) else payload
    results: list = []
    issued = [0]
    t0 = perf()
    soft_end, hard_end = t0 + seconds, t0 + hard_seconds

    def worker(conn: Conn) -> None:
        while issued[0] < max_requests:
            now = perf()
            if now >= hard_end or (now >= soft_end and issued[0] >= min_requests):
                break
            issued[0] += 1
            results.append(conn.request(payloads[issued[0] % len(payloads)], marker, expect, fail))

    greenlets = [gevent.spawn(worker, conn) for conn in pool]
    gevent.joinall(greenlets, timeout=hard_seconds + timeout + 5)
    for g in greenlets:
        if not g.dead:
            g.kill(block=False)
    return results, perf() - t0


def round_stats(results: list, wall: float) -> dict:
    ok = [r for r in results if r.ok]
    totals = [r.total for r in ok]
    ttfbs = [r.ttfb for r in ok if r.ttfb is not None]
    tfces = [r.tfce for r in ok if r.tfce is not None]
    errors: dict[str, int] = {}
    samples: dict[str, str] = {}
    for r in results:
        if not r.ok:
            errors[r.error or "?"] = errors.get(r.error or "?", 0) + 1
            samples.setdefault(r.error or "?", r.sample[:200].decode("utf-8", "replace"))
    return {
        "requests": len(results), "ok": len(ok), "errors": len(results) - len(ok),
        "error_kinds": errors, "error_samples": samples, "wall_s": round(wall, 3),
        "rps": len(ok) / wall if wall > 0 else 0.0,
        "p50": percentile(totals, 50), "p99": percentile(totals, 99),
        "ttfb_p50": percentile(ttfbs, 50), "ttfb_p99": percentile(ttfbs, 99),
        "tfce_p50": percentile(tfces, 50), "tfce_p99": percentile(tfces, 99),
        "_totals": totals, "_ttfbs": ttfbs, "_tfces": tfces,
    }


def measure_round(ctx: Context, side: str, pool: list[Conn], prep: Prepared, count: int) -> dict:
    args = ctx.args
    gw_pid, fake_pid = ctx.gateway.pid, ctx.fake.pid if ctx.fake else None
    if side == "gateway":
        payload, marker, expect, fail = prep.gateway, prep.marker, prep.expect, prep.fail
    else:
        payload, marker, expect, fail = prep.direct, (ANTHROPIC_MARKER if prep.scenario.stream else None), \
            (b"message_stop" if prep.scenario.stream else b'"content"'), None
    gc.collect()
    ctx.sampler.reset()
    if ctx.fake is not None:
        ctx.fake.lateness()  # forget the warm-up's and the last round's streams
    gw0 = procs.tree_cpu(gw_pid) if gw_pid else None
    fk0 = procs.tree_cpu(fake_pid) if fake_pid else None
    lg0 = os.times()
    gc.disable()  # no collector pauses of the load generator inside a measured round
    try:
        results, wall = run_load(pool, payload, args.round_seconds, count, args.max_requests,
                                 args.round_max_seconds, marker, expect, fail, args.timeout)
    finally:
        gc.enable()
    lg1 = os.times()
    gw1 = procs.tree_cpu(gw_pid) if gw_pid else None
    fk1 = procs.tree_cpu(fake_pid) if fake_pid else None
    st = round_stats(results, wall)
    late = ctx.fake.lateness() if ctx.fake is not None else None
    st["fake_late_first_p50_ms"] = percentile(late["first_ms"], 50) if late else None
    st["fake_late_last_p50_ms"] = percentile(late["last_ms"], 50) if late else None
    n = max(1, st["requests"])
    st["side"] = side
    st["gw_cpu_s"] = None if gw0 is None else gw1 - gw0
    st["gw_cpu_ms_per_req"] = None if gw0 is None else (gw1 - gw0) * 1000 / n
    st["fake_cpu_ms_per_req"] = None if fk0 is None else (fk1 - fk0) * 1000 / n
    st["lg_cpu_pct"] = ((lg1.user - lg0.user) + (lg1.system - lg0.system)) / wall * 100 if wall > 0 else None
    st.update(ctx.sampler.peak())
    return st


def side_summary(rounds: list[dict], with_cpu: bool) -> dict:
    pooled = lambda key: [v for r in rounds for v in r[key]]  # noqa: E731
    out = {
        "rounds": len(rounds),
        "requests": sum(r["requests"] for r in rounds),
        "errors": sum(r["errors"] for r in rounds),
        "rps": median(r["rps"] for r in rounds),
        "p50_ms": ms(median(r["p50"] for r in rounds)), "p99_ms": ms(median(r["p99"] for r in rounds)),
        "ttfb_p50_ms": ms(median(r["ttfb_p50"] for r in rounds)),
        "ttfb_p99_ms": ms(median(r["ttfb_p99"] for r in rounds)),
        "tfce_p50_ms": ms(median(r["tfce_p50"] for r in rounds)),
        "tfce_p99_ms": ms(median(r["tfce_p99"] for r in rounds)),
        "pooled_p50_ms": ms(percentile(pooled("_totals"), 50)),
        "pooled_p99_ms": ms(percentile(pooled("_totals"), 99)),
        "pooled_tfce_p99_ms": ms(percentile(pooled("_tfces"), 99)),
        "fake_cpu_ms_per_req": median(r["fake_cpu_ms_per_req"] for r in rounds),
        # how late the fake's streams sent their first / last event (its own slowness)
        "fake_late_first_p50_ms": median(r["fake_late_first_p50_ms"] for r in rounds),
        "fake_late_last_p50_ms": median(r["fake_late_last_p50_ms"] for r in rounds),
        "error_kinds": {},
    }
    for r in rounds:
        for k, v in r["error_kinds"].items():
            out["error_kinds"][k] = out["error_kinds"].get(k, 0) + v
        out.setdefault("error_samples", {}).update(r["error_samples"])
    if out["rps"] is not None:
        out["rps"] = round(out["rps"], 1)
    cpu = [r["gw_cpu_s"] for r in rounds if r["gw_cpu_s"] is not None]
    if with_cpu and cpu:
        out["cpu_ms_per_req"] = round(sum(cpu) * 1000 / max(1, out["requests"]), 3)
        out["rss_peak_mb"] = max(r["rss_peak_mb"] for r in rounds)
        out["pss_peak_mb"] = max(r["pss_peak_mb"] for r in rounds)
    elif cpu:
        out["gw_idle_cpu_ms_per_req"] = round(sum(cpu) * 1000 / max(1, out["requests"]), 3)
    return out


def run_cell(ctx: Context, scen: Scenario, c: int) -> dict:
    args = ctx.args
    cell = {"profile": ctx.profile, "scenario": scen.name, "concurrency": c,
            "stream": scen.stream, "body": scen.body}
    prep = ctx.prepare(scen)
    if isinstance(prep, str):
        cell["skipped"] = prep
        return cell
    cell.update(direct_body=prep.direct_body_source, gateway_body_bytes=prep.gateway_bytes,
                direct_body_bytes=prep.direct_bytes)
    count = max(args.requests, args.per_conn * c)
    sides = ["direct", "gateway"] if prep.direct is not None else ["gateway"]
    pools = {"gateway": [Conn(*ctx.gw_addr, timeout=args.timeout) for _ in range(c)]}
    if "direct" in sides:
        pools["direct"] = [Conn(*ctx.fake_addr, timeout=args.timeout) for _ in range(c)]
    started = time.monotonic()
    try:
        for side in sides:  # warm-up: open the keep-alive connections, warm caches
            run_load(pools[side], prep.gateway if side == "gateway" else prep.direct,
                     args.warmup_seconds, 2 * c, args.max_requests, args.warmup_seconds * 3,
                     None, None, None, args.timeout)
        if ctx.gateway.pid:  # how the kept-alive client connections landed on the workers
            per = procs.connections_per_process(ctx.gateway.pid, ctx.gw_addr[1])
            cell["gw_connections_per_worker"] = sorted((n for pid, n in per.items()
                                                        if pid != ctx.gateway.pid), reverse=True)
        rounds = []
        for _ in range(args.rounds):
            for side in sides:
                rounds.append(measure_round(ctx, side, pools[side], prep, count))
    finally:
        for pool in pools.values():
            for conn in pool:
                conn.close()
    by_side = {s: [r for r in rounds if r["side"] == s] for s in sides}
    g = side_summary(by_side["gateway"], with_cpu=True)
    d = side_summary(by_side["direct"], with_cpu=False) if "direct" in by_side else None
    added = {}
    if d is not None:
        for key in ("p50_ms", "p99_ms", "ttfb_p50_ms", "ttfb_p99_ms", "tfce_p50_ms", "tfce_p99_ms"):
            value = diff(g[key], d[key])
            added[key] = None if value is None else round(value, 3)
        pairs = list(zip(by_side["direct"], by_side["gateway"]))
        added["paired_p50_ms"] = ms(median(diff(gr["p50"], dr["p50"]) for dr, gr in pairs), 3)
        added["paired_p99_ms"] = ms(median(diff(gr["p99"], dr["p99"]) for dr, gr in pairs), 3)
        added["paired_tfce_p50_ms"] = ms(median(diff(gr["tfce_p50"], dr["tfce_p50"]) for dr, gr in pairs), 3)
    cell.update(
        direct=d, gateway=g, added=added,
        rps_ratio=round(g["rps"] / d["rps"], 3) if d and d["rps"] else None,
        lg_cpu_pct_max=max((r["lg_cpu_pct"] or 0) for r in rounds),
        min_requests_per_round=count,
        reconnects=sum(conn.reconnects for pool in pools.values() for conn in pool),
        seconds=round(time.monotonic() - started, 1),
        rounds=[{k: (round(v, 6) if isinstance(v, float) else v) for k, v in r.items() if not k.startswith("_")}
                for r in rounds],
    )
    return cell


# ------------------------------------------------------------------------------ targets


def evaluate_targets(cells: list[dict], args) -> list[dict]:
    measured = [c for c in cells if not c.get("skipped") and c.get("direct") is not None]

    def find(profile=None, scenario=None, c=None):
        return [x for x in measured if (profile is None or x["profile"] == profile)
                and (scenario is None or x["scenario"] == scenario)
                and (c is None or x["concurrency"] == c)]

    targets = []

    def add(name, cells_, test, describe):
        if not cells_:
            targets.append({"target": name, "measured": "-", "pass": None})
            return
        def safe(fn, x, default):
            try:
                return fn(x)
            except (TypeError, KeyError):  # a figure is missing (e.g. every request failed)
                return default

        ok = all(safe(test, x, False) for x in cells_)
        targets.append({"target": name, "pass": ok,
                        "measured": "; ".join(f"{x['profile']}/{x['scenario']}/c{x['concurrency']}: "
                                              f"{safe(describe, x, '-')}" for x in cells_)})

    c1 = find("fast", "cc-stream", 1) or find(None, "cc-stream", 1)
    add("added p50 <= 2 ms and p99 <= 5 ms, c=1, streamed Claude Code body", c1[:1],
        lambda x: x["added"]["p50_ms"] <= 2 and x["added"]["p99_ms"] <= 5,
        lambda x: f"p50 {x['added']['p50_ms']:+.2f} ms, p99 {x['added']['p99_ms']:+.2f} ms")
    add("added p50 <= 15 ms, c=50, fake 50 ms TTFT / 20 chunks 5 ms apart (streamed)",
        [x for x in find("llm", None, 50) if x["stream"]],
        lambda x: x["added"]["p50_ms"] <= 15, lambda x: f"{x['added']['p50_ms']:+.2f} ms")
    streamed = [x for x in measured if x["stream"] and x["gateway"].get("cpu_ms_per_req") is not None]
    worst = []  # the worst streamed cell of each profile
    for profile in dict.fromkeys(x["profile"] for x in streamed):
        worst += sorted((x for x in streamed if x["profile"] == profile),
                        key=lambda x: -x["gateway"]["cpu_ms_per_req"])[:1]
    add("gateway CPU <= 3 ms per streamed request (worst streamed cell per profile)", worst,
        lambda x: x["gateway"]["cpu_ms_per_req"] <= 3, lambda x: f"{x['gateway']['cpu_ms_per_req']:.2f} ms")
    add(f">= 400 streamed req/s, small body, fake no delays, c=50 ({args.workers} workers)",
        find("fast", "small-stream", 50), lambda x: x["gateway"]["rps"] >= 400,
        lambda x: f"{x['gateway']['rps']:.0f} req/s (direct {x['direct']['rps']:.0f})")
    add("Claude Code body req/s >= 0.8 x direct (c=50, fake no delays)",
        find("fast", "cc-stream", 50) + find("fast", "cc", 50),
        lambda x: (x["rps_ratio"] or 0) >= 0.8, lambda x: f"{x['rps_ratio']:.2f}")
    add("0 errors at c=200 (gateway)", find(None, None, 200), lambda x: x["gateway"]["errors"] == 0,
        lambda x: f"{x['gateway']['errors']} errors")
    return targets


# ------------------------------------------------------------------------------ main


def git_commit() -> str:
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=procs.ROOT, capture_output=True,
                              text=True, timeout=5).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=procs.ROOT,
                               capture_output=True, text=True, timeout=5).stdout.strip()
        return head + ("+dirty" if dirty else "")
    except (OSError, subprocess.SubprocessError):
        return "?"


def machine_busy_pct(seconds: float = 1.0) -> float:
    """Share of all CPUs busy over ``seconds`` (from /proc/stat), before we start anything."""
    def sample():
        with open("/proc/stat") as f:
            values = [int(v) for v in f.readline().split()[1:]]
        return sum(values), values[3] + values[4]  # total, idle + iowait

    total0, idle0 = sample()
    time.sleep(seconds)
    total1, idle1 = sample()
    return round(100.0 * (1 - (idle1 - idle0) / max(1, total1 - total0)), 1)


def parse_args(argv=None):
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.splitlines()[0],
                                formatter_class=argparse.ArgumentDefaultsHelpFormatter)
    p.add_argument("--quick", action="store_true", help="short rounds and a reduced matrix (~1-2 min)")
    p.add_argument("--profiles", help="fake profiles, comma-separated: " + ",".join(PROFILES)
                   + " (default: all); --fake-* options replace them with one 'custom' profile")
    p.add_argument("--scenarios", help="comma-separated: " + ",".join(SCENARIOS)
                   + " (default: per profile, see bench/README.md)")
    p.add_argument("--concurrency", "-c", help="comma-separated client concurrencies (default 1,10,50,200; "
                   "quick: 1,10,50 fast, 50 llm)")
    p.add_argument("--workers", type=int, default=2, help="gunicorn workers (WEB_CONCURRENCY)")
    p.add_argument("--rounds", type=int, help="measured rounds per side (default 5; quick 3)")
    p.add_argument("--round-seconds", type=float, help="duration of one round (default 2; quick 1)")
    p.add_argument("--requests", type=int, help="minimum requests per round: a round goes on past "
                   "--round-seconds until it has them (default 200; quick 100)")
    p.add_argument("--per-conn", type=int, default=2, help="minimum requests per round per connection")
    p.add_argument("--round-max-seconds", type=float, help="hard wall-clock cap of one round "
                   "(default 2 x --round-seconds)")
    p.add_argument("--max-requests", type=int, default=50000, help="hard cap of requests per round")
    p.add_argument("--warmup-seconds", type=float, help="warm-up per side per cell (default 1; quick 0.5)")
    p.add_argument("--timeout", type=float, default=30.0, help="per-request socket timeout (s)")
    p.add_argument("--max-minutes", type=float, help="skip remaining cells after this (default 20; quick 4)")
    p.add_argument("--fake-ttft", type=float, help="custom profile: fake time to first token (s)")
    p.add_argument("--fake-chunks", type=int, help="custom profile: text_delta events per answer")
    p.add_argument("--fake-interval", type=float, help="custom profile: seconds between events")
    p.add_argument("--cc-body", type=Path, default=DEFAULT_CC_BODY,
                   help="recorded Claude Code request (.jsonl line with body+headers, or .json body)")
    p.add_argument("--model", default=procs.SONNET)
    p.add_argument("--gateway-env", action="append", default=[], metavar="KEY=VALUE",
                   help="extra environment for gunicorn (repeatable)")
    p.add_argument("--config-extra", default="{}", help="JSON object merged into the gateway config")
    p.add_argument("--gateway-url", help="measure this running gateway instead of starting one")
    p.add_argument("--no-start", action="store_true", help="with --gateway-url: start nothing")
    p.add_argument("--gateway-key", default=procs.GATEWAY_KEY, help="client key for --gateway-url")
    p.add_argument("--gateway-pid", type=int, help="root pid for CPU/RSS with --gateway-url (default: "
                   "the process listening on its port)")
    p.add_argument("--fake-url", help="with --gateway-url: the fake SAP AI Core the gateway uses, for the "
                   "direct side (default: no direct side)")
    p.add_argument("--fake-key", type=Path, help="service key JSON of --fake-url (default: the fake's defaults)")
    p.add_argument("--json", type=Path, help="write results here (default bench/results/run-<time>.json)")
    p.add_argument("--keep-logs", action="store_true", help="keep the temporary directory with the logs")
    args = p.parse_args(argv)
    q = args.quick
    args.rounds = args.rounds or (3 if q else 5)
    args.requests = args.requests or (100 if q else 200)
    args.round_seconds = args.round_seconds or (1.0 if q else 2.0)
    args.round_max_seconds = args.round_max_seconds or 2 * args.round_seconds
    args.warmup_seconds = args.warmup_seconds or (0.5 if q else 1.0)
    args.max_minutes = args.max_minutes or (4.0 if q else 20.0)
    if args.no_start and not args.gateway_url:
        p.error("--no-start needs --gateway-url")
    return args


def build_plan(args) -> list[tuple[str, dict, list[Scenario], list[int]]]:
    custom = any(v is not None for v in (args.fake_ttft, args.fake_chunks, args.fake_interval))
    if args.gateway_url:
        names = ["external"]
    elif custom:
        names = ["custom"]
    else:
        names = args.profiles.split(",") if args.profiles else list(PROFILES)
    plan = []
    for name in names:
        if name in PROFILES:
            prof = dict(PROFILES[name])
        elif name in ("custom", "external"):
            prof = {"ttft": args.fake_ttft or 0.0, "chunks": args.fake_chunks or 4,
                    "interval": args.fake_interval or 0.0}
        else:
            raise SystemExit(f"unknown profile {name!r}; known: {', '.join(PROFILES)}")
        default_plan = QUICK_PLAN if args.quick else FULL_PLAN
        scen_names = args.scenarios.split(",") if args.scenarios else default_plan.get(name, FULL_PLAN["fast"])
        for s in scen_names:
            if s not in SCENARIOS:
                raise SystemExit(f"unknown scenario {s!r}; known: {', '.join(SCENARIOS)}")
        if args.concurrency:
            conc = [int(c) for c in args.concurrency.split(",")]
        elif args.quick:
            conc = QUICK_CONCURRENCY.get(name, QUICK_CONCURRENCY["fast"])
        else:
            conc = FULL_CONCURRENCY
        plan.append((name, prof, [SCENARIOS[s] for s in scen_names], conc))
    return plan


def start_profile(args, name: str, prof: dict, wd: Path) -> Context:
    if args.gateway_url:
        parts = urlsplit(args.gateway_url)
        if parts.hostname not in ("127.0.0.1", "localhost", "::1"):
            raise SystemExit("--gateway-url must be on loopback")
        pid = args.gateway_pid or procs.find_listener_pid(parts.port)
        gateway = procs.Gateway(None, args.gateway_url.rstrip("/"), pid)
        fake = token = None
        if args.fake_url:
            from app.simulator import FakeAICore, deployment_id_for

            key_path = args.fake_key
            if key_path is None:
                key_path = wd / "fake-key.json"
                default = FakeAICore()
                default.base_url = args.fake_url.rstrip("/")
                key_path.write_text(json.dumps(default.service_key()))
            url = args.fake_url.rstrip("/")
            fake = procs.Fake(None, url, key_path, f"{url}/v2/inference/deployments/{deployment_id_for(args.model)}",
                              external_pid=procs.find_listener_pid(urlsplit(url).port))
            token = fake.token()
        return Context(args, name, fake, gateway, token)
    fake = procs.start_fake(wd, ttft=prof["ttft"], chunks=prof["chunks"], interval=prof["interval"],
                            model=args.model)
    env = dict(kv.split("=", 1) for kv in args.gateway_env)
    gateway = procs.start_gateway(fake, wd, workers=args.workers, env=env,
                                  config_extra=json.loads(args.config_extra))
    return Context(args, name, fake, gateway, fake.token())


def main(argv=None) -> int:
    args = parse_args(argv)
    procs.install_signal_exit()
    nofile = procs.raise_nofile(8192)
    plan = build_plan(args)
    deadline = time.monotonic() + args.max_minutes * 60
    started = datetime.datetime.now(datetime.timezone.utc)
    meta = {
        "started": started.isoformat(timespec="seconds"), "commit": git_commit(), "cpus": os.cpu_count(),
        "python": platform.python_version(), "loadavg_at_start": os.getloadavg(), "nofile": nofile,
        "args": {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()},
        "profiles": {name: prof for name, prof, _, _ in plan},
    }
    busy = machine_busy_pct()
    meta["machine_busy_before_pct"] = busy
    if busy > 10:
        print(f"warning: the machine was {busy:.0f}% busy before the benchmark started; "
              "other load distorts every figure", flush=True)
    print(f"gateway benchmark: commit {meta['commit']}, {meta['cpus']} CPUs, workers {args.workers}, "
          f"rounds {args.rounds} x {args.round_seconds} s (>= {args.requests} requests, <= {args.round_max_seconds} s)", flush=True)
    wd = procs.workdir()
    cells: list[dict] = []
    wall0 = time.monotonic()
    try:
        for name, prof, scenarios, concurrency in plan:
            print(f"\n== profile {name}: fake TTFT {prof['ttft']} s, {prof['chunks']} chunks, "
                  f"{prof['interval']} s apart ==", flush=True)
            pwd = wd / name
            pwd.mkdir()
            ctx = start_profile(args, name, prof, pwd)
            try:
                for scen in scenarios:
                    for c in concurrency:
                        if time.monotonic() > deadline:
                            cell = {"profile": name, "scenario": scen.name, "concurrency": c,
                                    "stream": scen.stream, "skipped": "--max-minutes reached"}
                        else:
                            cell = run_cell(ctx, scen, c)
                        cells.append(cell)
                        print(progress_line(cell), flush=True)
                if ctx.gateway.proc is not None:
                    log = ctx.gateway.log_counts()
                    meta.setdefault("gateway_log", {})[name] = log
                    if log["counts"]["ERROR"] or log["counts"]["CRITICAL"]:
                        print(f"   gateway log: {log['counts']} first: {log['first']}", flush=True)
                fstats = ctx.fake.stats() if ctx.fake else None
                meta.setdefault("fake_stats", {})[name] = fstats
            finally:
                ctx.close()
                if ctx.gateway.proc is not None:
                    procs.stop(ctx.gateway.proc)
                if ctx.fake is not None and ctx.fake.proc is not None:
                    procs.stop(ctx.fake.proc)
    finally:
        procs.stop_all()
        meta["seconds"] = round(time.monotonic() - wall0, 1)
        targets = evaluate_targets(cells, args)
        out = {"meta": meta, "cells": cells, "targets": targets}
        path = args.json or RESULTS_DIR / f"run-{started.strftime('%Y%m%d-%H%M%S')}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(out, indent=2, default=str))
        print("\n" + report.cells_table(cells))
        print("\nTimes in ms; 'added' = gateway - direct (medians of per-round p50/p99, alternating rounds); "
              "req/s = medians; CPU = whole gunicorn tree; LG = load generator.")
        print("\n" + report.targets_table(targets))
        print(f"\n{len(cells)} cells in {meta['seconds']} s; JSON: {path}")
        if args.keep_logs:
            print(f"logs kept in {wd}")
        else:
            import shutil

            shutil.rmtree(wd, ignore_errors=True)
    return 0


def progress_line(cell: dict) -> str:
    head = f"  {cell['profile']:>6} {cell['scenario']:<13} c={cell['concurrency']:<4}"
    if cell.get("skipped"):
        return head + f" skipped: {cell['skipped']}"
    g, d, a = cell["gateway"], cell["direct"], cell["added"]
    if d is None:
        return head + f" gw p50 {g['p50_ms']} ms p99 {g['p99_ms']} ms {g['rps']} req/s err {g['errors']}"
    return (head + f" added p50 {a['p50_ms']:+.2f} p99 {a['p99_ms']:+.2f} ms"
            + (f" 1st-event {a['tfce_p50_ms']:+.2f}" if a.get("tfce_p50_ms") is not None else "")
            + f" | req/s d {d['rps']:.0f} g {g['rps']:.0f} | err {d['errors']}/{g['errors']}"
            + f" | cpu {g.get('cpu_ms_per_req')} ms/req rss {g.get('rss_peak_mb')} MB"
            + f" | conns/worker {'/'.join(map(str, cell.get('gw_connections_per_worker', [])))}"
            + f" | lg {cell['lg_cpu_pct_max']:.0f}% | {cell['seconds']} s")


if __name__ == "__main__":
    sys.exit(main())
