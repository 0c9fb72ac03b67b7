"""Tests of the fake SAP AI Core itself (``app/simulator.py``), over real loopback HTTP."""

from __future__ import annotations

import copy
import json
import pathlib
import signal
import subprocess
import sys
import time
import weakref

import pytest
import requests

from tests.http_fakes import BASH_TOOL, BASH_TOOL_LOOP
from tests.paths import CLAUDE_CODE_FIXTURES
from app.simulator import DEFAULT_REPLY, ERROR_EVENT_LINES, FakeAICore, Step

SONNET = "anthropic--claude-4.5-sonnet"
HAIKU = "anthropic--claude-4.5-haiku"
FIXTURES = CLAUDE_CODE_FIXTURES
REPO = pathlib.Path(__file__).resolve().parents[2]


@pytest.fixture
def fake():
    with FakeAICore() as server:
        server.add_deployment("dep1", SONNET)
        server.add_deployment("dep-b", HAIKU, resource_group="team-b")
        yield server


def get_token(fake: FakeAICore) -> str:
    r = requests.post(
        fake.base_url + "/auth/oauth/token",
        auth=(fake.client_id, fake.client_secret),
        data={"grant_type": "client_credentials"},
    )
    assert r.status_code == 200, r.text
    return r.json()["access_token"]


_tokens: weakref.WeakKeyDictionary[FakeAICore, str] = weakref.WeakKeyDictionary()


def ai_headers(fake: FakeAICore, group: str = "default", token: str | None = None) -> dict:
    """AI Core headers; without ``token``, one token per fake instance is fetched and reused."""
    if token is None:
        if fake not in _tokens:
            _tokens[fake] = get_token(fake)
        token = _tokens[fake]
    return {"Authorization": f"Bearer {token}", "AI-Resource-Group": group}


def bedrock_body(**changes) -> dict:
    body = {
        "anthropic_version": "bedrock-2023-05-31",
        "max_tokens": 2048,
        "messages": [{"role": "user", "content": [{"type": "text", "text": "say hello"}]}],
    }
    body.update(changes)
    return body


def call(fake: FakeAICore, body, sse: bool = False, dep: str = "dep1", headers: dict | None = None,
         **kwargs) -> requests.Response:
    suffix = "invoke-with-response-stream" if sse else "invoke"
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{fake.base_url}/v2/inference/deployments/{dep}/{suffix}", data=data,
                         headers={**(headers or ai_headers(fake)), "Content-Type": "application/json"}, **kwargs)


def data_lines(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body (either line ending)."""
    text = raw.decode().replace("\r\n", "\n")
    out = []
    for event in text.split("\n\n"):
        if event.strip():
            assert event.startswith("data: "), event[:80]
            out.append(event[len("data: "):])
    return out


def events_of(raw: bytes) -> list[dict]:
    return [json.loads(line) for line in data_lines(raw)]


def comparable(events: list[dict]) -> list[dict]:
    """Events without the per-call message id and latency metrics."""
    events = copy.deepcopy(events)
    for e in events:
        if e["type"] == "message_start":
            e["message"].pop("id")
        if e["type"] == "message_stop":
            e.pop("amazon-bedrock-invocationMetrics")
    return events


# ---- XSUAA ---------------------------------------------------------------------------------


@pytest.mark.parametrize("form", ["basic", "query", "body"])
def test_token_request_forms(fake, form):
    url = fake.base_url + "/auth/oauth/token"
    creds = {"client_id": fake.client_id, "client_secret": fake.client_secret}
    if form == "basic":
        r = requests.post(url, auth=(fake.client_id, fake.client_secret), data={"grant_type": "client_credentials"})
    elif form == "query":
        r = requests.post(url + "?grant_type=client_credentials", auth=(fake.client_id, fake.client_secret))
    else:
        r = requests.post(url, data={"grant_type": "client_credentials", **creds})
    assert r.status_code == 200, r.text
    payload = r.json()
    assert payload["access_token"].startswith("tok-")
    assert payload["token_type"] == "bearer"
    assert payload["expires_in"] == 43199
    assert fake.token_calls == 1


def test_token_bad_credentials_and_idp_down(fake):
    url = fake.base_url + "/auth/oauth/token"
    r = requests.post(url, auth=(fake.client_id, "wrong"), data={"grant_type": "client_credentials"})
    assert r.status_code == 401
    assert r.json() == {"error": "unauthorized", "error_description": "Bad credentials"}
    fake.idp_down = True
    r = requests.post(url, auth=(fake.client_id, fake.client_secret), data={"grant_type": "client_credentials"})
    assert r.status_code == 503
    assert fake.token_calls == 2


def test_token_expiry(fake):
    fake.token_ttl = 0
    token = get_token(fake)
    r = requests.get(fake.base_url + "/v2/lm/deployments", headers=ai_headers(fake, token=token))
    assert r.status_code == 401
    assert r.json() == {"message": "Jwt is expired"}


# ---- AI API --------------------------------------------------------------------------------


def test_deployments_listing(fake):
    fake.add_deployment("dep-stopped", HAIKU, status="STOPPED")
    url = fake.base_url + "/v2/lm/deployments"
    headers = ai_headers(fake)
    r = requests.get(url, params={"scenarioId": "foundation-models", "status": "RUNNING", "$top": 10000},
                     headers=headers)
    assert r.status_code == 200
    payload = r.json()
    assert payload["count"] == 1
    (dep,) = payload["resources"]
    assert dep["id"] == "dep1"
    assert dep["deploymentUrl"] == f"{fake.base_url}/v2/inference/deployments/dep1"
    resources = dep["details"]["resources"]
    assert resources["backend_details"]["model"] == {"name": SONNET, "version": "1"}
    assert resources["backendDetails"]["model"] == {"name": SONNET, "version": "1"}

    everything = requests.get(url, headers=headers).json()
    assert {d["id"] for d in everything["resources"]} == {"dep1", "dep-stopped"}
    assert requests.get(url, params={"$top": 1}, headers=headers).json()["resources"][0]["id"] == "dep1"
    team_b = requests.get(url, headers={**headers, "AI-Resource-Group": "team-b"}).json()
    assert [d["id"] for d in team_b["resources"]] == ["dep-b"]
    assert requests.get(url, params={"scenarioId": "orchestration"}, headers=headers).json()["count"] == 0


def test_deployments_require_token_and_resource_group(fake):
    url = fake.base_url + "/v2/lm/deployments"
    assert requests.get(url, headers={"AI-Resource-Group": "default"}).status_code == 401
    assert requests.get(url, headers=ai_headers(fake, token="tok-999")).status_code == 401
    token = get_token(fake)
    assert requests.get(url, headers={"Authorization": f"Bearer {token}"}).status_code == 400
    assert requests.get(url, headers=ai_headers(fake, "nope", token)).status_code == 403


# ---- invoke --------------------------------------------------------------------------------


def test_invoke_happy_path_and_recording(fake):
    r = call(fake, bedrock_body())
    assert r.status_code == 200, r.text
    msg = r.json()
    assert msg["id"].startswith("msg_bdrk_")
    assert msg["model"] == "claude-sonnet-4-5-20250929"
    assert msg["content"] == [{"type": "text", "text": DEFAULT_REPLY}]
    assert msg["stop_reason"] == "end_turn"
    assert msg["usage"]["input_tokens"] > 0 and msg["usage"]["output_tokens"] > 0
    assert msg["usage"]["cache_read_input_tokens"] == 0

    record = fake.inference_requests[-1]
    assert record.deployment_id == "dep1"
    assert record.headers["AI-Resource-Group"] == "default"
    assert record.headers["authorization"].startswith("Bearer tok-")
    assert record.json == bedrock_body()
    assert record.status == 200


def test_invoke_needs_token_and_matching_resource_group(fake):
    assert call(fake, bedrock_body(), headers={"AI-Resource-Group": "default"}).status_code == 401
    r = call(fake, bedrock_body(), headers=ai_headers(fake, "team-b"))
    assert r.status_code == 404
    assert "message" in r.json()
    assert call(fake, bedrock_body(), headers=ai_headers(fake, "nope")).status_code == 403
    assert call(fake, bedrock_body(), dep="unknown").status_code == 404


def test_invoke_with_cache_control_reports_cache_reads(fake):
    body = bedrock_body(system=[{"type": "text", "text": "Be brief.", "cache_control": {"type": "ephemeral"}}])
    usage = call(fake, body).json()["usage"]
    assert usage["cache_read_input_tokens"] > 0


def test_thinking_block_in_invoke(fake):
    body = bedrock_body(thinking={"type": "enabled", "budget_tokens": 1024})
    content = call(fake, body).json()["content"]
    assert content[0]["type"] == "thinking" and content[0]["signature"]
    assert content[1]["type"] == "text"


# ---- stream --------------------------------------------------------------------------------


def test_stream_framing(fake):
    fake.stream_event_count = 5
    r = call(fake, bedrock_body(), sse=True)
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/event-stream")
    assert b"event:" not in r.content
    events = events_of(r.content)
    types = [e["type"] for e in events]
    assert types == ["message_start", "content_block_start"] + ["content_block_delta"] * 5 + [
        "content_block_stop", "message_delta", "message_stop"]
    assert "".join(e["delta"]["text"] for e in events if e["type"] == "content_block_delta") == DEFAULT_REPLY
    assert events[-2]["delta"]["stop_reason"] == "end_turn"
    metrics = events[-1]["amazon-bedrock-invocationMetrics"]
    assert set(metrics) == {"inputTokenCount", "outputTokenCount", "invocationLatency", "firstByteLatency",
                            "cacheReadInputTokenCount", "cacheWriteInputTokenCount"}
    assert metrics["outputTokenCount"] == events[-2]["usage"]["output_tokens"]


def test_stream_tool_call_and_thinking(fake):
    body = bedrock_body(
        messages=[{"role": "user", "content": [
            {"type": "text", "text": "<system-reminder>\nignore me\n</system-reminder>"},
            {"type": "text", "text": "list the files here"}]}],
        tools=[{"name": "Bash", "description": "Run", "input_schema": {"type": "object"}}],
        thinking={"type": "enabled", "budget_tokens": 1024},
    )
    events = events_of(call(fake, body, sse=True).content)
    starts = [e["content_block"]["type"] for e in events if e["type"] == "content_block_start"]
    assert starts == ["thinking", "text", "tool_use"]
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    assert [d["type"] for d in deltas if d["type"] in ("thinking_delta", "signature_delta")][-1] == "signature_delta"
    tool_start = next(e for e in events if e["type"] == "content_block_start" and e["index"] == 2)
    assert tool_start["content_block"]["id"].startswith("toolu_bdrk_")
    partials = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert len(partials) > 3
    assert json.loads("".join(partials)) == {"command": "echo fake-tool-ok", "description": "Echo a marker"}
    assert events[-2]["delta"]["stop_reason"] == "tool_use"


def test_tool_result_is_echoed(fake):
    body = bedrock_body(messages=[
        {"role": "user", "content": "run ls"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_bdrk_1", "name": "Bash", "input": {}}]},
        {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_bdrk_1", "content": "a.txt\nb.py"}]},
    ])
    assert call(fake, body).json()["content"] == [{"type": "text", "text": "Tool said: a.txt\nb.py"}]


@pytest.mark.parametrize("chunking", ["byte", "random", "crlf"])
def test_chunking_keeps_the_events(fake, chunking):
    plain = events_of(call(fake, bedrock_body(), sse=True).content)
    fake.script("dep1", Step(chunking=chunking))
    with call(fake, bedrock_body(), sse=True, stream=True) as r:
        chunks = list(r.iter_content(chunk_size=None))
    raw = b"".join(chunks)
    assert comparable(events_of(raw)) == comparable(plain)
    if chunking == "byte":
        assert len(chunks) == len(raw)
    if chunking == "crlf":
        assert b"\r\n\r\n" in raw and b"\n\n" not in raw.replace(b"\r\n", b"")


@pytest.mark.parametrize("shape", sorted(ERROR_EVENT_LINES))
def test_mid_stream_error_event(fake, shape):
    fake.script("dep1", Step(error_event=shape, error_after_events=2))
    lines = data_lines(call(fake, bedrock_body(), sse=True).content)
    assert len(lines) == 3
    assert lines[-1] == ERROR_EVENT_LINES[shape]
    assert "message_stop" not in "".join(lines)


def test_eof_malformed_and_huge_events(fake):
    fake.script("dep1", Step(eof_after_events=3), Step(malformed_line_after=2), Step(huge_json_delta=True))
    assert [e["type"] for e in events_of(call(fake, bedrock_body(), sse=True).content)] == [
        "message_start", "content_block_start", "content_block_delta"]

    lines = data_lines(call(fake, bedrock_body(), sse=True).content)
    bad = [line for line in lines if not line.endswith("}")]
    assert len(bad) == 1 and lines.index(bad[0]) == 2
    assert json.loads(lines[-1])["type"] == "message_stop"

    events = events_of(call(fake, bedrock_body(), sse=True).content)
    deltas = [e["delta"] for e in events if e["type"] == "content_block_delta"]
    partials = [d["partial_json"] for d in deltas if d["type"] == "input_json_delta"]
    assert max(len(p) for p in partials) > 1_000_000
    assert json.loads("".join(partials))["content"] == "A" * 1_000_000


def test_delays(fake):
    fake.script("dep1", Step(headers_delay=0.1), Step(first_event_delay=0.15, gap_after_event=(1, 0.1)))
    t0 = time.monotonic()
    assert call(fake, bedrock_body()).status_code == 200
    assert time.monotonic() - t0 >= 0.1

    t0 = time.monotonic()
    with call(fake, bedrock_body(), sse=True, stream=True) as r:
        headers_at = time.monotonic() - t0
        arrivals = [(time.monotonic() - t0, chunk) for chunk in r.iter_content(chunk_size=None)]
    assert headers_at < 0.1  # headers are flushed before the first-event delay
    assert arrivals[0][0] >= 0.15
    first_delta = next(t for t, chunk in arrivals if b"content_block_delta" in chunk)
    assert first_delta - arrivals[0][0] >= 0.1


@pytest.mark.parametrize("steady", [False, True])
def test_a_steady_pace_does_not_add_up_late_wake_ups(fake, steady):
    """On a busy machine every wake-up of the fake is late; with ``steady_pace`` the next
    wait is shortened by that lateness, so the stream keeps its own clock (benchmarks)."""
    fake.stream_event_count = 6
    fake.stream_interval = 0.05
    asked: list[float] = []

    def late(seconds: float) -> bool:
        asked.append(seconds)
        time.sleep(seconds + 0.03)
        return False

    fake.pause_stream = late
    fake.steady_pace = steady
    with call(fake, bedrock_body(), sse=True, stream=True) as r:
        assert b"message_stop" in b"".join(r.iter_content(chunk_size=None))
    assert len(asked) == 10 and asked[0] == pytest.approx(0.05, abs=0.005)
    if steady:
        assert all(a < 0.035 for a in asked[1:]), asked
    else:
        assert all(a == 0.05 for a in asked), asked


def test_a_steady_stream_reports_how_late_its_first_and_last_events_left(fake):
    """Benchmarks tell the fake's own lateness (a busy machine) from the client's side."""
    fake.first_token_delay = 0.02
    fake.stream_event_count = 4
    fake.stream_interval = 0.02
    reports: list[tuple[float, float]] = []

    def late_once(seconds: float) -> bool:  # the first wake-up is 30 ms late, the rest on time
        time.sleep(seconds + (0.03 if not slept else 0.0))
        slept.append(seconds)
        return False

    slept: list[float] = []
    fake.pause_stream = late_once
    fake.steady_pace = True
    fake.pace_report = lambda first, last: reports.append((first, last))
    with call(fake, bedrock_body(), sse=True, stream=True) as r:
        assert b"message_stop" in b"".join(r.iter_content(chunk_size=None))
    ((first, last),) = reports
    assert 0.03 <= first < 0.06  # late
    assert last < 0.025  # the stream caught up with its own clock


def test_reply_override(fake):
    fake.script("dep1", Step(reply="Custom words."),
                Step(reply=[{"type": "tool_use", "name": "Read", "input": {"path": "a.py"}}]))
    assert call(fake, bedrock_body()).json()["content"] == [{"type": "text", "text": "Custom words."}]
    msg = call(fake, bedrock_body()).json()
    assert msg["stop_reason"] == "tool_use" and msg["content"][0]["id"].startswith("toolu_bdrk_")


def test_client_disconnect_is_counted(fake):
    fake.stream_event_count = 50
    fake.stream_interval = 0.02
    with call(fake, bedrock_body(), sse=True, stream=True) as r:
        next(r.iter_content(chunk_size=None))
        assert fake.open_streams == 1
    deadline = time.monotonic() + 2
    while fake.closed_streams == 0 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert fake.closed_streams == 1
    assert fake.open_streams == 0


# ---- scripts -------------------------------------------------------------------------------


def test_script_429_then_200(fake):
    fake.script("dep1", Step(status=429, retry_after=3), 200)
    r = call(fake, bedrock_body())
    assert r.status_code == 429
    assert r.headers["Retry-After"] == "3"
    assert r.json() == {"message": "Too many requests, please wait before trying again."}
    assert call(fake, bedrock_body()).status_code == 200
    assert call(fake, bedrock_body(), sse=True).status_code == 200  # script used up


def test_script_revokes_token_once(fake):
    token = get_token(fake)
    fake.script("dep1", Step(revoke_token=True))
    r = call(fake, bedrock_body(), headers=ai_headers(fake, token=token))
    assert r.status_code == 401 and r.json() == {"message": "Jwt is expired"}
    assert call(fake, bedrock_body(), headers=ai_headers(fake, token=token)).status_code == 401
    assert call(fake, bedrock_body()).status_code == 200  # a fresh token works


def test_converse_is_refused(fake):
    for suffix in ("converse", "converse-stream"):
        r = requests.post(f"{fake.base_url}/v2/inference/deployments/dep1/{suffix}", json={}, headers=ai_headers(fake))
        assert r.status_code == 404 and "message" in r.json()
    assert fake.converse_calls == 2
    assert [r.path.rsplit("/", 1)[1] for r in fake.inference_requests] == ["converse", "converse-stream"]


def test_unknown_route_is_json_404(fake):
    r = requests.get(fake.base_url + "/nope")
    assert r.status_code == 404 and "message" in r.json()


# ---- strict Bedrock validation ---------------------------------------------------------------


def _msgs(*content, role="user"):
    return [{"role": role, "content": list(content)}]


def _text(text, **extra):
    return {"type": "text", "text": text, **extra}


EPHEMERAL = {"type": "ephemeral"}
TOOL = {"name": "Read", "description": "Read", "input_schema": {"type": "object"}}

REJECTIONS = {
    "model key": (dict(model="x"), 400, "Malformed input request: #: extraneous key [model] is not permitted"),
    "stream key": (dict(stream=True), 400, "extraneous key [stream]"),
    "no version": (dict(anthropic_version=None), 400, "anthropic_version"),
    "context_management": (dict(context_management={}), 400, "context_management: Extra inputs are not permitted"),
    "output_config": (dict(output_config={"effort": "low"}), 400, "output_config: Extra inputs are not permitted"),
    "unknown key": (dict(foo=1), 400, "foo: Extra inputs are not permitted"),
    "beta": (dict(anthropic_beta=["effort-2025-11-24"]), 400, "invalid beta flag"),
    "max_tokens": (dict(max_tokens=64001), 400, "max_tokens: 64001 > 64000"),
    "empty text": (dict(messages=_msgs(_text(""))), 400,
                   "messages.0.content.0.text: text content blocks must be non-empty"),
    "empty messages": (dict(messages=[]), 400, "messages"),
    "starts with assistant": (dict(messages=_msgs(_text("hi"), role="assistant")), 400, "first message"),
    "system role": (dict(messages=_msgs(_text("hi")) + _msgs(_text("rule"), role="system")), 500, "unexpected"),
    "cache scope": (dict(system=[_text("s", cache_control={"type": "ephemeral", "scope": "global"})]), 400,
                    "system.0.cache_control.scope: Extra inputs are not permitted"),
    "5 breakpoints": (dict(system=[_text(f"s{i}", cache_control=EPHEMERAL) for i in range(5)]), 400,
                      "A maximum of 4 blocks with cache_control may be provided. Found 5."),
    "ttl": (dict(system=[_text("s", cache_control={"type": "ephemeral", "ttl": "2h"})]), 400, "ttl"),
    "1h after 5m": (dict(system=[_text("a", cache_control=EPHEMERAL),
                                 _text("b", cache_control={"type": "ephemeral", "ttl": "1h"})]), 400, "ttl='1h'"),
    "cache on thinking": (dict(messages=_msgs(_text("hi")) + _msgs(
        {"type": "thinking", "thinking": "t", "signature": "s", "cache_control": EPHEMERAL}, role="assistant")
        + _msgs(_text("go on"))), 400, "messages.1.content.0.cache_control"),
    "defer_loading": (dict(tools=[{**TOOL, "defer_loading": True}]), 400,
                      "tools.0.custom.defer_loading: Extra inputs are not permitted"),
    "server tool": (dict(tools=[{"type": "web_search_20250305", "name": "web_search"}]), 400, "web_search_20250305"),
    "empty tools": (dict(tools=[]), 400, "tools"),
    "tool_reference": (dict(messages=_msgs(_text("hi")) + _msgs(
        {"type": "tool_use", "id": "toolu_1", "name": "ToolSearch", "input": {}}, role="assistant") + _msgs(
        {"type": "tool_result", "tool_use_id": "toolu_1",
         "content": [{"type": "tool_reference", "tool_name": "WebSearch"}]})), 400,
        "messages.2.content.0.content.0"),
    "tool id": (dict(messages=_msgs(_text("hi")) + _msgs(
        {"type": "tool_use", "id": "call.1", "name": "Read", "input": {}}, role="assistant") + _msgs(
        {"type": "tool_result", "tool_use_id": "call.1", "content": "x"}), tools=[TOOL]), 400, "pattern"),
    "adaptive on 4.5": (dict(thinking={"type": "adaptive"}), 400, "thinking.type"),
    "thinking.display": (dict(thinking={"type": "enabled", "budget_tokens": 1024, "display": "omitted"}), 400,
                         "thinking.display: Extra inputs are not permitted"),
    "budget too small": (dict(thinking={"type": "enabled", "budget_tokens": 100}), 400, "budget_tokens"),
    "budget >= max_tokens": (dict(thinking={"type": "enabled", "budget_tokens": 2048}), 400, "max_tokens"),
    "temperature": (dict(thinking={"type": "enabled", "budget_tokens": 1024}, temperature=0.2), 400, "temperature"),
    "top_k": (dict(thinking={"type": "enabled", "budget_tokens": 1024}, top_k=5), 400, "top_k"),
}


@pytest.mark.parametrize("case", list(REJECTIONS))
def test_strict_rejections(fake, case):
    changes, status, fragment = REJECTIONS[case]
    body = bedrock_body(**changes)
    body = {k: v for k, v in body.items() if v is not None}
    r = call(fake, body)
    assert r.status_code == status, r.text
    assert fragment in r.json()["message"]


def test_malformed_json_body(fake):
    r = call(fake, b"{not json")
    assert r.status_code == 400 and "Malformed input request" in r.json()["message"]


def test_nested_reject_field_and_knobs(fake):
    fake.reject_fields = {"output_config.effort"}
    r = call(fake, bedrock_body(output_config={"effort": "high"}))
    assert r.json() == {"message": "output_config.effort: Extra inputs are not permitted"}
    assert call(fake, bedrock_body(output_config={"format": {"type": "json"}})).status_code == 200
    fake.allowed_betas.add("effort-2025-11-24")
    assert call(fake, bedrock_body(anthropic_beta=["effort-2025-11-24"])).status_code == 200
    fake.accept_ttl_1h = False
    r = call(fake, bedrock_body(system=[_text("s", cache_control={"type": "ephemeral", "ttl": "1h"})]))
    assert r.status_code == 400
    fake.strict = False
    assert call(fake, bedrock_body(model="x", stream=True)).status_code == 200


def test_opus_4_max_tokens_and_adaptive_on_4_6(fake):
    fake.add_deployment("opus4", "anthropic--claude-4-opus")
    fake.add_deployment("opus46", "anthropic--claude-4.6-opus")
    assert call(fake, bedrock_body(max_tokens=32001), dep="opus4").status_code == 400
    assert call(fake, bedrock_body(max_tokens=32000), dep="opus4").status_code == 200
    assert call(fake, bedrock_body(thinking={"type": "adaptive"}), dep="opus46").status_code == 200


def _sanitize(body: dict, betas: list[str], allowed: set[str]) -> dict:
    """A minimal stand-in for the gateway's sanitizer, enough for the captured bodies."""
    body = copy.deepcopy(body)
    for key in ("model", "stream", "context_management", "output_config", "thinking"):
        body.pop(key, None)
    body["anthropic_version"] = "bedrock-2023-05-31"
    body["anthropic_beta"] = [b for b in betas if b in allowed]
    assistants = [m for m in body["messages"] if m["role"] == "assistant"]
    if not assistants or assistants[-1]["content"][0].get("type") == "thinking" or not any(
            b.get("type") == "tool_use" for b in assistants[-1]["content"]):
        body["thinking"] = {"type": "enabled", "budget_tokens": 8000}  # not in an open tool loop
    body["tools"] = [{k: v for k, v in t.items() if k != "defer_loading"} for t in body["tools"]]
    body["messages"] = [m for m in body["messages"] if m["role"] != "system"]
    return body


@pytest.mark.skipif(not FIXTURES.exists(), reason="shared fixtures not present")
def test_thinking_next_to_tools_follows_claudes_rules(fake):
    tool, loop = BASH_TOOL, BASH_TOOL_LOOP
    base = {"anthropic_version": "bedrock-2023-05-31", "max_tokens": 4000, "tools": [tool],
            "thinking": {"type": "enabled", "budget_tokens": 2000}}
    r = call(fake, {**base, "messages": loop})
    assert r.status_code == 400 and "must start with a thinking block" in r.text
    r = call(fake, {**base, "messages": loop[:1], "tool_choice": {"type": "any"}})
    assert r.status_code == 400 and "tool_choice" in r.text
    thought = {"type": "thinking", "thinking": "ls it", "signature": "sig"}
    ok = [loop[0], {**loop[1], "content": [thought] + loop[1]["content"]}, loop[2]]
    assert call(fake, {**base, "messages": ok}).status_code == 200
    assert call(fake, {**base, "messages": loop[:1], "tool_choice": {"type": "auto"}}).status_code == 200


def test_sanitized_real_claude_code_bodies_pass(fake):
    for path in sorted(FIXTURES.glob("2.1.332/tools.jsonl")):
        for line in path.read_text().splitlines():
            record = json.loads(line)
            raw_body = record["body"]
            betas = next(v for k, v in record["headers"] if k.lower() == "anthropic-beta").split(",")
            r = call(fake, raw_body)
            assert r.status_code == 400  # unsanitized: model/stream are refused
            body = _sanitize(raw_body, betas, fake.allowed_betas)
            r = call(fake, body, sse=True)
            assert r.status_code == 200, r.text
            assert events_of(r.content)[-1]["type"] == "message_stop"


# ---- command line --------------------------------------------------------------------------


def test_command_line(tmp_path):
    key_path = tmp_path / "key.json"
    proc = subprocess.Popen(
        [sys.executable, "-m", "app.simulator", "--port", "0", "--models", f"{SONNET},{HAIKU}",
         "--chunks", "3", "--write-key", str(key_path)],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
    )
    try:
        line = proc.stdout.readline().strip()
        assert line.startswith("READY http://127.0.0.1:")
        base = line.split()[1]
        key = json.loads(key_path.read_text())
        assert key["serviceurls"]["AI_API_URL"] == base
        token = requests.post(key["url"] + "/oauth/token", auth=(key["clientid"], key["clientsecret"]),
                              data={"grant_type": "client_credentials"}).json()["access_token"]
        headers = {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}
        deps = requests.get(base + "/v2/lm/deployments", headers=headers).json()["resources"]
        assert sorted(d["details"]["resources"]["backend_details"]["model"]["name"] for d in deps) == [HAIKU, SONNET]
        assert all(d["id"].startswith("d-") for d in deps)
        url = deps[0]["deploymentUrl"] + "/invoke-with-response-stream"
        r = requests.post(url, json=bedrock_body(), headers=headers)
        deltas = [e for e in events_of(r.content) if e["type"] == "content_block_delta"]
        assert len(deltas) == 3
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=5) == 0
