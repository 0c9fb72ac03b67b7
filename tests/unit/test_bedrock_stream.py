"""BedrockToAnthropicStream: golden streams (SAP AI Core in -> Anthropic SSE out), the
Anthropic grammar (clients-and-pain-points.md §2.2/§2.3) on every output, and the state the
caller reads. Golden pairs live in tests/fixtures/sse/<case>.in.sse / <case>.out.sse."""

import json
from pathlib import Path

import pytest

from app.translate.bedrock_stream import (
    BedrockToAnthropicStream,
    anthropic_error_event,
    classify_error,
    clean_error_message,
    message_from_bedrock,
    usage_from_message,
)
from app.wire.sse import SSEDecoder

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sse"
CASES = sorted(p.name[: -len(".in.sse")] for p in FIXTURES.glob("*.in.sse"))
MODEL = "anthropic--claude-4.5-sonnet"

START = (
    '{"type":"message_start","message":{"id":"msg_bdrk_01AbC","type":"message","role":"assistant",'
    '"model":"claude-sonnet-4-5-20250929","content":[],"stop_reason":null,"stop_sequence":null,'
    '"usage":{"input_tokens":12,"cache_creation_input_tokens":0,"cache_read_input_tokens":3050,"output_tokens":1}}}'
)
TEXT_START = '{"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}'
STOP_REASONS = {
    "end_turn",
    "max_tokens",
    "stop_sequence",
    "tool_use",
    "pause_turn",
    "refusal",
    "model_context_window_exceeded",
}
DELTA_TYPES = {
    "text": {"text_delta", "citations_delta"},
    "tool_use": {"input_json_delta"},
    "server_tool_use": {"input_json_delta"},
    "thinking": {"thinking_delta", "signature_delta"},
    "redacted_thinking": set(),
}
USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens", "output_tokens")


# -- helpers ---------------------------------------------------------------------------------


def run(chunks, model=MODEL):
    """The relay pipeline: bytes -> SSEDecoder -> translator -> client bytes."""
    dec = SSEDecoder()
    tr = BedrockToAnthropicStream(model=model)
    out = []
    for chunk in chunks:
        for ev in dec.feed(chunk):
            out.append(tr.feed(ev.data))
    for ev in dec.flush():
        out.append(tr.feed(ev.data))
    out.append(tr.finish())
    return b"".join(out), tr


def feed_all(datas, model=MODEL):
    tr = BedrockToAnthropicStream(model=model)
    out = b"".join(tr.feed(d) for d in datas) + tr.finish()
    return out, tr


def parse_client_stream(raw):
    """Client-side view: (event name, parsed JSON, data string) per event."""
    dec = SSEDecoder()
    events = dec.feed(raw) + dec.flush()
    return [(ev.event, json.loads(ev.data), ev.data) for ev in events]


def validate_anthropic_stream(raw, model=MODEL):
    """Assert the Anthropic streaming grammar and invariants; return the parsed events."""
    assert b"[DONE]" not in raw
    # framing: every frame is exactly "event: X\ndata: JSON\n\n"
    frames = raw.split(b"\n\n")
    assert frames[-1] == b"", "output must end with a blank line"
    for frame in frames[:-1]:
        lines = frame.split(b"\n")
        assert len(lines) == 2 and lines[0].startswith(b"event: ") and lines[1].startswith(b"data: "), frame
    events = parse_client_stream(raw)
    assert events, "empty stream"
    for name, obj, _ in events:
        assert name is not None, "unnamed event"
        assert name == obj["type"], (name, obj)

    i = 0
    while i < len(events) and events[i][0] == "ping":
        i += 1
    assert i < len(events), "only pings"
    if events[i][0] == "error":  # ping* error
        assert i == len(events) - 1, "events after error"
        err = events[i][1]["error"]
        assert err["type"] and err["message"]
        return events
    name, obj, _ = events[i]
    assert name == "message_start"
    msg = obj["message"]
    assert msg["content"] == [] and msg["stop_reason"] is None
    assert msg["model"] == model
    assert msg["id"].startswith("msg_")
    for key in USAGE_KEYS:
        assert isinstance(msg["usage"].get(key), int), key
    assert msg["usage"]["output_tokens"] >= 1

    next_index = 0
    open_block = None  # (index, type, state dict)
    delta_seen = False
    for j in range(i + 1, len(events)):
        name, obj, data = events[j]
        last = j == len(events) - 1
        if name == "ping":
            continue
        if name == "error":
            assert last, "events after error"
            assert obj["error"]["type"] and obj["error"]["message"]
            return events
        if name == "message_start":
            raise AssertionError("second message_start")
        if name == "content_block_start":
            assert not delta_seen, "block after message_delta"
            assert open_block is None, "two blocks open"
            assert obj["index"] == next_index, (obj["index"], next_index)
            block = obj["content_block"]
            btype = block["type"]
            if btype in ("tool_use", "server_tool_use"):
                assert block["input"] == {}
                assert block["id"].replace("_", "").replace("-", "").isalnum()
            open_block = (obj["index"], btype, {"text": block.get("text", ""), "json": "", "sig": 0, "think": 0})
        elif name == "content_block_delta":
            assert open_block is not None and obj["index"] == open_block[0], "delta outside its block"
            dtype = obj["delta"]["type"]
            assert dtype in DELTA_TYPES.get(open_block[1], {dtype}), (open_block[1], dtype)
            state = open_block[2]
            if dtype == "text_delta":
                state["text"] += obj["delta"]["text"]
            elif dtype == "input_json_delta":
                state["json"] += obj["delta"]["partial_json"]
            elif dtype == "thinking_delta":
                assert state["sig"] == 0, "thinking after signature"
                state["think"] += 1
            elif dtype == "signature_delta":
                state["sig"] += 1
                assert state["sig"] == 1, "two signatures"
        elif name == "content_block_stop":
            assert open_block is not None and obj["index"] == open_block[0], "stop without start"
            btype, state = open_block[1], open_block[2]
            if btype == "text":
                assert state["text"] != "", "empty text block (invariant 5)"
            if btype == "tool_use":
                assert isinstance(json.loads(state["json"] or "{}"), dict)
            if btype == "thinking":
                assert state["sig"] == 1, "thinking block without signature"
            open_block = None
            next_index += 1
        elif name == "message_delta":
            assert open_block is None, "message_delta inside a block"
            assert obj["delta"]["stop_reason"] in STOP_REASONS
            for key in USAGE_KEYS:
                assert isinstance(obj.get("usage", {}).get(key), int), key
            delta_seen = True
        elif name == "message_stop":
            assert last, "events after message_stop"
            assert delta_seen, "message_stop without message_delta"
            assert data == '{"type":"message_stop"}'
            return events
        else:
            raise AssertionError("unexpected event %r" % name)
    raise AssertionError("stream ends without message_stop or error")


def offsets(raw):
    if len(raw) <= 4096:
        return range(len(raw) + 1)
    picked = set(range(0, len(raw) + 1, 211))
    for i, b in enumerate(raw):
        if b in (0x0A, 0x0D):
            picked.update(range(max(0, i - 2), min(len(raw), i + 3) + 1))
    return sorted(picked)


# -- golden files ----------------------------------------------------------------------------


def test_golden_cases_present():
    names = set(CASES)
    for case in ("text_only", "thinking_tool_use", "empty_text_then_tool_use", "error_typed", "eof_before_stop", "ping"):
        assert case in names
    for case in CASES:
        assert (FIXTURES / (case + ".out.sse")).exists(), case


@pytest.mark.parametrize("case", CASES)
def test_golden_output_obeys_grammar(case):
    validate_anthropic_stream((FIXTURES / (case + ".out.sse")).read_bytes())


@pytest.mark.parametrize("case", CASES)
def test_golden_split_at_every_offset(case):
    raw = (FIXTURES / (case + ".in.sse")).read_bytes()
    expected = (FIXTURES / (case + ".out.sse")).read_bytes()
    assert run([raw])[0] == expected
    for k in offsets(raw):
        assert run([raw[:k], raw[k:]])[0] == expected, k


@pytest.mark.parametrize("case", CASES)
def test_golden_one_byte_chunks(case):
    raw = (FIXTURES / (case + ".in.sse")).read_bytes()
    expected = (FIXTURES / (case + ".out.sse")).read_bytes()
    assert run([raw[i : i + 1] for i in range(len(raw))])[0] == expected


@pytest.mark.parametrize("case", CASES)
def test_golden_deltas_relayed_byte_exact(case):
    """Every delta in the output is a delta of the input, byte for byte, except where a
    suppressed empty block forced an index change (then only the index differs)."""
    raw_in = (FIXTURES / (case + ".in.sse")).read_bytes()
    dec = SSEDecoder()
    inputs = [ev.data for ev in dec.feed(raw_in) + dec.flush()]
    out = parse_client_stream((FIXTURES / (case + ".out.sse")).read_bytes())
    for name, obj, data in out:
        if name != "content_block_delta":
            continue
        if data in inputs:
            continue
        # renumbered: the same text with another index value
        candidates = [d for d in inputs if d.replace('"index":%d' % (obj["index"] + 1), '"index":%d' % obj["index"]) == data
                      or d.replace('"index": %d' % (obj["index"] + 1), '"index": %d' % obj["index"]) == data]
        assert candidates, data


def test_renumbered_thinking_keeps_its_bytes():
    out = (FIXTURES / "empty_text_renumber.out.sse").read_bytes()
    assert b'"thinking":"Two files \\u2014 read both: a\\/b.py"' in out
    assert b'{"type":"content_block_delta", "index": 0, "delta":{"type":"signature_delta","signature":"ErUBCkYIBxgCIkB+/sig=="}}' in out
    indices = [obj["index"] for name, obj, _ in parse_client_stream(out) if name == "content_block_start"]
    assert indices == [0, 1, 2, 3]


def test_spec_example_output():
    out, tr = run([(FIXTURES / "thinking_tool_use.in.sse").read_bytes()])
    events = parse_client_stream(out)
    assert [e[0] for e in events] == [
        "message_start",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "content_block_start",
        "content_block_delta",
        "content_block_delta",
        "content_block_stop",
        "message_delta",
        "message_stop",
    ]
    assert events[-2][1]["usage"] == {
        "input_tokens": 12,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 3050,
        "output_tokens": 41,
    }
    assert b"amazon-bedrock-invocationMetrics" not in out
    assert tr.done and not tr.failed and tr.stop_reason == "tool_use"


# -- state for the caller --------------------------------------------------------------------


def test_usage_prefers_invocation_metrics():
    stop = ('{"type":"message_stop","amazon-bedrock-invocationMetrics":{"inputTokenCount":13,"outputTokenCount":44,'
            '"invocationLatency":1,"firstByteLatency":1,"cacheReadInputTokenCount":3051,"cacheWriteInputTokenCount":7}}')
    delta = '{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},"usage":{"output_tokens":41}}'
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    assert tr.usage == {"input_tokens": 12, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3050}
    tr.feed(TEXT_START)
    tr.feed('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}')
    tr.feed('{"type":"content_block_stop","index":0}')
    tr.feed(delta)
    assert tr.usage["output_tokens"] == 41 and tr.stop_reason == "end_turn"
    assert tr.feed(stop) == b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
    assert tr.usage == {"input_tokens": 13, "output_tokens": 44, "cache_creation_input_tokens": 7, "cache_read_input_tokens": 3051}
    assert tr.done and not tr.failed


def test_started_and_first_content_flags():
    tr = BedrockToAnthropicStream(model=MODEL)
    assert not tr.started
    assert tr.feed('{"type": "ping"}').startswith(b"event: ping\n")
    tr.feed(START)
    assert tr.started and not tr.first_content_seen
    assert tr.feed(TEXT_START) == b""  # held back: empty text
    assert not tr.first_content_seen
    assert tr.feed('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":""}}') == b""
    assert not tr.first_content_seen
    out = tr.feed('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Hi"}}')
    assert out.startswith(b"event: content_block_start\n") and b"text_delta" in out
    assert tr.first_content_seen


@pytest.mark.parametrize(
    "block",
    [
        '{"type":"tool_use","id":"toolu_1","name":"Bash","input":{}}',
        '{"type":"thinking","thinking":""}',
        '{"type":"redacted_thinking","data":"abc"}',
        '{"type":"text","text":"Already text"}',
    ],
)
def test_first_content_on_non_empty_block_start(block):
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    out = tr.feed('{"type":"content_block_start","index":0,"content_block":%s}' % block)
    assert out.startswith(b"event: content_block_start\n")
    assert tr.first_content_seen


def test_input_after_message_stop_is_ignored():
    out, tr = run([(FIXTURES / "text_only.in.sse").read_bytes()])
    assert tr.done
    assert tr.feed(TEXT_START) == b""
    assert tr.feed("not json") == b""
    assert tr.finish() == b""
    assert tr.error_event("api_error", "late") == b""
    assert not tr.failed


def test_input_after_error_is_ignored():
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    first = tr.feed('{"type":"error","error":{"type":"api_error","message":"boom"}}')
    assert first == b'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"boom"}}\n\n'
    assert tr.failed and tr.error_type == "api_error" and tr.error_message == "boom"
    assert tr.feed('{"type":"message_stop"}') == b""
    assert tr.finish() == b""
    assert not tr.done


def test_error_event_method_closes_stream_and_strips_urls():
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    out = tr.error_event("timeout_error", "read timed out from https://host.example/v2/inference/deployments/d1 after 300 s")
    obj = json.loads(out.split(b"data: ", 1)[1])
    assert obj == {"type": "error", "error": {"type": "timeout_error", "message": "read timed out from [url] after 300 s"}}
    assert tr.failed and tr.error_type == "timeout_error"
    assert tr.feed(TEXT_START) == b""


def test_eof_before_message_start():
    out, tr = feed_all([])
    assert parse_client_stream(out)[0][1]["error"]["type"] == "overloaded_error"
    assert tr.failed and not tr.started
    validate_anthropic_stream(out)


def test_eof_with_held_text_block_only():
    out, tr = feed_all([START, TEXT_START])
    events = parse_client_stream(out)
    assert [e[0] for e in events] == ["message_start", "error"]


@pytest.mark.parametrize(
    "data, etype",
    [
        ('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}', "overloaded_error"),
        ('{"type":"error","error":{"type":"api_error","message":"Internal server error"}}', "api_error"),
        ('{"type":"error","message":"ThrottlingException: Too many tokens"}', "overloaded_error"),
        ('{"type":"error","error":"modelStreamErrorException"}', "api_error"),
        ('{"message":"Too many requests, please wait before trying again."}', "overloaded_error"),
        ('{"Message":"serviceUnavailableException"}', "overloaded_error"),
        ('{"error":{"code":"429","message":"rate limited by ai core"}}', "overloaded_error"),
        ('{"error":"Bad Gateway","error_description":"upstream connect error"}', "api_error"),
        ('{"error":{}}', "api_error"),
        ("ThrottlingException: Rate exceeded", "overloaded_error"),
        ("internal failure", "api_error"),
        ('{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"trunc', "api_error"),
        ('["not", "an", "object"]', "api_error"),
    ],
)
def test_error_shapes(data, etype):
    for prefix in ([], [START], [START, TEXT_START, '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"x"}}']):
        out, tr = feed_all(prefix + [data])
        events = validate_anthropic_stream(out)
        assert events[-1][0] == "error"
        assert events[-1][1]["error"]["type"] == etype
        assert tr.failed and tr.error_type == etype
        assert tr.error_message == events[-1][1]["error"]["message"]


def test_non_json_truncated_payload_not_echoed():
    out, tr = feed_all([START, '{"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"secret'])
    assert b"secret" not in out


def test_blank_data_and_typeless_noise_ignored():
    out, tr = feed_all([START, "", "  ", '{"foo":1}'])
    assert [e[0] for e in parse_client_stream(out)] == ["message_start", "error"]
    assert tr.error_message == "Upstream stream ended early"


def test_unknown_event_type_relayed_named_after_start():
    tr = BedrockToAnthropicStream(model=MODEL)
    assert tr.feed('{"type":"future_event","x":1}') == b""  # not before message_start
    tr.feed(START)
    assert tr.feed('{"type":"future_event","x":1}') == b'event: future_event\ndata: {"type":"future_event","x":1}\n\n'
    assert tr.feed('{"type":"bad\\nname"}') == b""


def test_events_before_message_start_fail():
    out, tr = feed_all([TEXT_START])
    events = validate_anthropic_stream(out)
    assert events[0][1]["error"]["type"] == "api_error"


def test_message_start_fills_missing_cache_counts_and_sets_model():
    start = ('{"type":"message_start","message":{"id":"msg_bdrk_1","type":"message","role":"assistant","model":"x",'
             '"content":[],"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":5,"output_tokens":1}}}')
    tr = BedrockToAnthropicStream(model="claude-opus-4-1")
    obj = json.loads(tr.feed(start).split(b"data: ", 1)[1])
    assert obj["message"]["model"] == "claude-opus-4-1"
    assert obj["message"]["usage"] == {"input_tokens": 5, "output_tokens": 1, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}


def test_message_delta_keeps_upstream_counts():
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    out = tr.feed('{"type":"message_delta","delta":{"stop_reason":"end_turn","stop_sequence":null},'
                  '"usage":{"input_tokens":99,"cache_read_input_tokens":null,"output_tokens":7,"server_tool_use":{"web_search_requests":1}}}')
    obj = json.loads(out.split(b"data: ", 1)[1])
    assert obj["usage"] == {
        "input_tokens": 99,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 3050,
        "output_tokens": 7,
        "server_tool_use": {"web_search_requests": 1},
    }
    assert tr.usage["input_tokens"] == 99 and tr.usage["output_tokens"] == 7


def test_fast_path_relays_raw_bytes():
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    tr.feed('{"type":"content_block_start","index":0,"content_block":{"type":"thinking","thinking":""}}')
    odd = '{ "type" : "content_block_delta" , "index":0,"delta":{"type":"thinking_delta","thinking":"caf\\u00e9 \\/ x"} }'
    assert tr.feed(odd) == b"event: content_block_delta\ndata: " + odd.encode() + b"\n\n"


def test_multiline_data_stays_valid_sse():
    tr = BedrockToAnthropicStream(model=MODEL)
    tr.feed(START)
    tr.feed('{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t1","name":"X","input":{}}}')
    data = '{"type":"content_block_delta",\n"index":0,"delta":{"type":"input_json_delta","partial_json":"{}"}}'
    out = tr.feed(data)
    events = parse_client_stream(out)
    assert events[0][2] == data


def test_each_stream_has_its_own_state():
    a = BedrockToAnthropicStream(model="a")
    b = BedrockToAnthropicStream(model="b")
    a.feed(START)
    a.feed(TEXT_START)
    a.feed('{"type":"content_block_stop","index":0}')  # a suppresses a block, b must not shift
    b.feed(START)
    out = b.feed('{"type":"content_block_start","index":0,"content_block":{"type":"tool_use","id":"t","name":"X","input":{}}}')
    assert b'"index":0' in out
    assert a.usage is not b.usage


# -- helpers -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "text, expected",
    [
        ("ThrottlingException: Rate exceeded", "overloaded_error"),
        ("Too many tokens, please wait", "overloaded_error"),
        ("Rate limit reached", "overloaded_error"),
        ("rate_limit_error", "overloaded_error"),
        ("Overloaded", "overloaded_error"),
        ("ServiceUnavailableException", "overloaded_error"),
        ("internalServerException", "api_error"),
        ("", "api_error"),
    ],
)
def test_classify_error(text, expected):
    assert classify_error(text) == expected


def test_clean_error_message():
    assert clean_error_message("see http://a.b/c?d=e and HTTPS://x.y/z.") == "see [url] and [url]"
    assert clean_error_message("line1\n  line2") == "line1 line2"
    assert len(clean_error_message("x" * 5000)) <= 1001


def test_anthropic_error_event():
    assert anthropic_error_event("api_error", "caf\u00e9") == (
        'event: error\ndata: {"type":"error","error":{"type":"api_error","message":"caf\u00e9"}}\n\n'.encode()
    )


BODY = {
    "id": "msg_bdrk_01AbC",
    "type": "message",
    "role": "assistant",
    "model": "claude-sonnet-4-5-20250929",
    "content": [
        {"type": "text", "text": ""},
        {"type": "thinking", "thinking": "hm", "signature": "EqQB"},
        {"type": "text", "text": "Done."},
        {"type": "tool_use", "id": "toolu_bdrk_01Y", "name": "Edit", "input": {"path": "a.py"}},
    ],
    "stop_reason": "tool_use",
    "stop_sequence": None,
    "usage": {"input_tokens": 12, "output_tokens": 40, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 3050},
}


def test_message_from_bedrock():
    before = json.dumps(BODY, sort_keys=True)
    msg = message_from_bedrock(BODY, model=MODEL)
    assert json.dumps(BODY, sort_keys=True) == before, "input mutated"
    assert msg["model"] == MODEL
    assert [b["type"] for b in msg["content"]] == ["thinking", "text", "tool_use"]
    assert msg["content"][0] is BODY["content"][1]
    for key in ("id", "type", "role", "stop_reason", "stop_sequence", "usage"):
        assert msg[key] == BODY[key]


def test_usage_from_message():
    assert usage_from_message(BODY) == BODY["usage"]
    assert usage_from_message({"usage": {"input_tokens": 3}}) == {
        "input_tokens": 3,
        "output_tokens": 0,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": 0,
    }
    assert usage_from_message({})["output_tokens"] == 0


def test_non_streaming_equals_accumulated_stream():
    """Invariant 11 on our side: the golden stream accumulates to what message_from_bedrock
    would return for the same content."""
    events = parse_client_stream((FIXTURES / "empty_text_renumber.out.sse").read_bytes())
    blocks = []
    for name, obj, _ in events:
        if name == "content_block_start":
            blocks.append(dict(obj["content_block"]))
        elif name == "content_block_delta":
            d = obj["delta"]
            blk = blocks[obj["index"]]
            if d["type"] == "thinking_delta":
                blk["thinking"] += d["thinking"]
            elif d["type"] == "signature_delta":
                blk["signature"] = d["signature"]
            elif d["type"] == "input_json_delta":
                blk["_json"] = blk.get("_json", "") + d["partial_json"]
    for blk in blocks:
        if "_json" in blk:
            blk["input"] = json.loads(blk.pop("_json"))
    body = {"model": "x", "content": [{"type": "text", "text": ""}] + blocks}
    assert message_from_bedrock(body, model=MODEL)["content"] == blocks


# -- the validator itself rejects what it should ---------------------------------------------

_OK = (FIXTURES / "text_only.out.sse").read_bytes()


@pytest.mark.parametrize(
    "bad",
    [
        _OK.replace(b"event: content_block_delta\n", b"", 1),  # unnamed data line
        _OK + b"data: [DONE]\n\n",
        _OK.replace(b'"index":0,"delta"', b'"index":1,"delta"', 1),  # delta index mismatch
        _OK.replace(b'event: message_stop\ndata: {"type":"message_stop"}\n\n', b""),  # no message_stop
        _OK.replace(b'"text_delta","text":"Hello"', b'"input_json_delta","partial_json":"{}"', 1),  # wrong delta type
        _OK.replace(b"\"cache_read_input_tokens\":3050,\"output_tokens\":9", b"\"output_tokens\":9"),  # short usage
        (b'event: message_start\ndata: ' + START.encode() + b"\n\n"
         + b'event: content_block_start\ndata: ' + TEXT_START.encode() + b"\n\n"
         + b'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n'),  # empty text block
    ],
)
def test_validator_rejects(bad):
    with pytest.raises(AssertionError):
        validate_anthropic_stream(bad)
