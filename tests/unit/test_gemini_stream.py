"""GeminiToAnthropic beyond the golden files (when the end is emitted, usage, error shapes,
a seeded fuzz run against both client grammars) and JsonArrayStreamSplitter. Every stream
made here goes through BedrockToAnthropicStream and ChatCompletionStream and their grammar
checks (``checked``)."""

from __future__ import annotations

import json
import random

import pytest

from app.streaming import AdaptedStream
from app.translate.bedrock_stream import BedrockToAnthropicStream
from app.translate.gemini import FunctionNames, GeminiToAnthropic, JsonArrayStreamSplitter, message_from_gemini
from app.translate.gemini.stream import gemini_error
from tests.unit.test_bedrock_stream import validate_anthropic_stream
from tests.unit.test_gemini_golden import (
    GOLDEN,
    MESSAGE_ID,
    accumulate,
    check_bedrock_events,
    through_bedrock,
    through_chat,
)
from tests.unit.test_openai_chat_golden import MODEL, check_grammar


def dumps(obj) -> str:
    return json.dumps(obj, separators=(",", ":"))


def chunk(parts=None, finish=None, usage=None) -> dict:
    out: dict = {}
    if parts is not None or finish:
        candidate: dict = {"content": {"role": "model", "parts": parts or []}}
        if finish:
            candidate["finishReason"] = finish
        out["candidates"] = [candidate]
    if usage is not None:
        out["usageMetadata"] = usage
    return out


def run(datas, names=None, **kw) -> tuple[list[str], GeminiToAnthropic]:
    adapter = GeminiToAnthropic(MODEL, MESSAGE_ID, names, **kw)
    events: list[str] = []
    for data in datas:
        events += adapter.feed(data if isinstance(data, str) else dumps(data))
    return events + adapter.finish(), adapter


def checked(events: list[str]) -> list:
    """Both client grammars hold for these adapter events; returns the Anthropic client events."""
    check_bedrock_events(events)
    raw, _ = through_bedrock(events)
    client = validate_anthropic_stream(raw, model=MODEL)
    chat_raw, _ = through_chat(events)
    check_grammar(chat_raw, include_usage=True)
    return client


def kinds(events: list[str]) -> list[str]:
    return [json.loads(e)["type"] for e in events]


# --------------------------------------------------------------------------- the end


def test_end_is_held_until_eof_then_emitted_by_finish():
    adapter = GeminiToAnthropic(MODEL, MESSAGE_ID)
    out = adapter.feed(dumps(chunk([{"text": "Hi"}], "STOP", {"promptTokenCount": 5, "candidatesTokenCount": 1})))
    assert kinds(out) == ["message_start", "content_block_start", "content_block_delta", "content_block_stop"]
    assert not adapter.done and adapter.stop_reason == "end_turn" and adapter.finish_reason == "STOP"
    tail = adapter.finish()
    assert kinds(tail) == ["message_delta", "message_stop"] and adapter.done
    assert adapter.finish() == [] and adapter.feed(dumps(chunk([{"text": "late"}]))) == []
    checked(out + tail)


def test_a_later_chunk_proves_the_end_and_its_usage_counts():
    adapter = GeminiToAnthropic(MODEL, MESSAGE_ID)
    first = adapter.feed(dumps(chunk([{"text": "Hi"}], "STOP", {"promptTokenCount": 5, "candidatesTokenCount": 1})))
    later = adapter.feed(dumps({"usageMetadata": {"promptTokenCount": 5, "candidatesTokenCount": 2,
                                                  "thoughtsTokenCount": 9, "cachedContentTokenCount": 4}}))
    assert kinds(later) == ["message_delta", "message_stop"] and adapter.done
    assert json.loads(later[0])["usage"] == {"input_tokens": 1, "cache_creation_input_tokens": 0,
                                             "cache_read_input_tokens": 4, "output_tokens": 11}
    assert adapter.usage == {"input_tokens": 1, "output_tokens": 11, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 4}
    assert adapter.finish() == []
    checked(first + later)


def test_eof_without_finish_reason_emits_nothing_and_the_client_side_reports_it():
    events, adapter = run([chunk([{"text": "Hal"}], usage={"promptTokenCount": 3})])
    assert not adapter.done and not adapter.failed and kinds(events)[-1] == "content_block_delta"
    client = checked(events)
    assert client[-1][1]["error"]["type"] == "overloaded_error"


def test_through_adapted_stream_the_relay_wrapper():
    raw = (GOLDEN / "stream" / "thoughts_then_text.in.sse").read_text(encoding="utf-8")
    datas = [line[6:] for line in raw.replace("\r\n", "\n").split("\n") if line.startswith("data: ")]
    stream = AdaptedStream(GeminiToAnthropic(MODEL, MESSAGE_ID), BedrockToAnthropicStream(model=MODEL))
    out = b"".join(stream.feed(d) for d in datas) + stream.finish()
    validate_anthropic_stream(out, model=MODEL)
    assert stream.done and stream.usage["cache_read_input_tokens"] == 4096
    eof = AdaptedStream(GeminiToAnthropic(MODEL, MESSAGE_ID), BedrockToAnthropicStream(model=MODEL))
    out = eof.feed(datas[0]) + eof.finish()
    assert validate_anthropic_stream(out, model=MODEL)[-1][0] == "error" and eof.failed


# --------------------------------------------------------------------------- usage


def test_message_start_uses_the_estimate_until_gemini_counts():
    events, adapter = run([chunk([{"text": "x"}]), chunk([], "STOP", {"promptTokenCount": 50, "candidatesTokenCount": 2})],
                          estimated_input_tokens=47)
    start = json.loads(events[0])["message"]["usage"]
    assert start == {"input_tokens": 47, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                     "output_tokens": 1}
    assert json.loads(events[-2])["usage"]["input_tokens"] == 50 and adapter.usage["output_tokens"] == 2
    checked(events)


def test_partial_usage_metadata_keeps_earlier_counts():
    events, adapter = run([chunk([{"text": "x"}], usage={"promptTokenCount": 9, "candidatesTokenCount": 4}),
                           chunk([{"text": "y"}], usage={"totalTokenCount": 13}),
                           chunk([], "STOP", {"candidatesTokenCount": 6})])
    assert adapter.usage == {"input_tokens": 9, "output_tokens": 6, "cache_creation_input_tokens": 0,
                             "cache_read_input_tokens": 0}
    checked(events)


# --------------------------------------------------------------------------- failures


@pytest.mark.parametrize("error, etype", [
    ({"code": 429, "message": "Resource exhausted.", "status": "RESOURCE_EXHAUSTED"}, "overloaded_error"),
    ({"code": 503, "message": "The model is overloaded.", "status": "UNAVAILABLE"}, "overloaded_error"),
    ({"code": 400, "message": "Request contains an invalid argument.", "status": "INVALID_ARGUMENT"}, "api_error"),
    ({"code": 500, "message": "Too many requests in flight"}, "overloaded_error"),
    ({"code": 404, "status": "NOT_FOUND"}, "api_error"),
    ("plain string error", "api_error"),
    ({}, "api_error"),
])
def test_error_shapes(error, etype):
    for prefix in ([], [chunk([{"text": "x"}])], [chunk([{"text": "x"}], "STOP")]):
        events, adapter = run(prefix + [{"error": error}, chunk([{"text": "after"}], "STOP")])
        last = json.loads(events[-1])
        assert last["type"] == "error" and last["error"]["type"] == etype and last["error"]["message"]
        assert adapter.failed and not adapter.done
        client = checked(events)
        assert client[-1][0] == "error"


def test_gemini_error_message_is_cleaned():
    etype, message = gemini_error({"code": 429, "message": "Quota  exceeded,\nsee https://cloud.google.com/x ok"})
    assert (etype, message) == ("overloaded_error", "Quota exceeded, see [url] ok")


@pytest.mark.parametrize("data, etype", [
    ("42", "api_error"),
    ('"text"', "api_error"),
    ('[{"candidates":[]}, 7]', "api_error"),
    ('{"candidates":[{"content":{"parts":[{"text":"trunc', "api_error"),
    ("Service Unavailable", "overloaded_error"),
    ("<html>502 Bad Gateway</html>", "api_error"),
])
def test_payloads_that_are_not_responses(data, etype):
    events, adapter = run([data])
    assert json.loads(events[-1])["error"]["type"] == etype and adapter.failed
    checked(events)


def test_empty_payloads_and_array_framing_carry_nothing():
    adapter = GeminiToAnthropic(MODEL, MESSAGE_ID)
    for data in ("", "  ", "[", ",", "]", "[]"):
        assert adapter.feed(data) == [], data
    assert not adapter.failed


# --------------------------------------------------------------------------- fuzz


def random_part(rng: random.Random) -> dict:
    kind = rng.choice(["text", "text", "thought", "empty", "signed_thought", "call", "call_signed", "image"])
    if kind == "text":
        return {"text": rng.choice(["a", "b c", "\u00e9\u2705", " "])}
    if kind == "thought":
        return {"text": rng.choice(["t1", "t2"]), "thought": True}
    if kind == "empty":
        return {"text": "", "thoughtSignature": "c2ln"} if rng.random() < 0.5 else {"text": ""}
    if kind == "signed_thought":
        return {"text": rng.choice(["", "s"]), "thought": True, "thoughtSignature": rng.choice(["QQ==", "Qg"])}
    if kind == "image":
        return {"inlineData": {"mimeType": "image/png", "data": "AA"}}
    part = {"functionCall": {"name": rng.choice(["Read", "mcp_x_y_", "Bash"]),
                             "args": rng.choice([{}, {"p": "/a"}, {"n": [1, {"k": None}]}])}}
    if kind == "call_signed":
        part["thoughtSignature"] = "Y2FsbA=="
    return part


def test_fuzz_streams_obey_both_grammars_and_match_the_non_streaming_answer():
    rng = random.Random(7)
    names = FunctionNames(["Read", "mcp(x)y!", "Bash"])
    finishes = ["STOP", "MAX_TOKENS", "SAFETY", "OTHER", "MALFORMED_FUNCTION_CALL"]
    for _ in range(400):
        chunks, parts = [], []
        usage = {"promptTokenCount": rng.randint(1, 500)}
        for n in range(rng.randint(0, 6)):
            chunk_parts = [random_part(rng) for _ in range(rng.randint(0, 3))]
            parts += chunk_parts
            usage = dict(usage, candidatesTokenCount=n + 1)
            chunks.append(chunk(chunk_parts, usage=dict(usage)))
        finish = rng.choice(finishes)
        chunks.append(chunk([random_part(rng)] if rng.random() < 0.5 else [], finish, dict(usage)))
        parts += chunks[-1]["candidates"][0]["content"]["parts"]
        if rng.random() < 0.4:
            usage = dict(usage, thoughtsTokenCount=rng.randint(0, 50), cachedContentTokenCount=1)
            chunks.append({"usageMetadata": dict(usage)})
        as_array = rng.random() < 0.2
        datas = [dumps(chunks)] if as_array else [dumps(c) for c in chunks]
        events, adapter = run(datas, names)
        assert adapter.done, chunks
        checked(events)
        whole = message_from_gemini({"candidates": [{"content": {"parts": parts}, "finishReason": finish}],
                                     "usageMetadata": usage}, model=MODEL, names=names, message_id=MESSAGE_ID)
        assert accumulate(events) == whole, chunks


# --------------------------------------------------------------------------- JSON array stream


def split_all(splitter: JsonArrayStreamSplitter, pieces) -> list[str]:
    out: list[str] = []
    for piece in pieces:
        out += splitter.feed(piece)
    return out + splitter.flush()


ARRAY = ('[{"a": "x\\"}{[", "b": [1, {"c": "]"}]}\n,\r\n{"d": "\\\\"}, {"e": "\u00e9\u2705"},'
         '{"f": {"g": {}}}\n]').encode("utf-8")


def test_splitter_every_offset_and_byte_by_byte():
    expected = [json.dumps(o, ensure_ascii=False) for o in json.loads(ARRAY)]
    whole = split_all(JsonArrayStreamSplitter(), [ARRAY])
    assert [json.dumps(json.loads(t), ensure_ascii=False) for t in whole] == expected
    for cut in range(len(ARRAY) + 1):
        assert split_all(JsonArrayStreamSplitter(), [ARRAY[:cut], ARRAY[cut:]]) == whole, cut
    for a in range(0, len(ARRAY), 7):
        for b in range(a, len(ARRAY), 11):
            assert split_all(JsonArrayStreamSplitter(), [ARRAY[:a], ARRAY[a:b], ARRAY[b:]]) == whole, (a, b)
    assert split_all(JsonArrayStreamSplitter(), [ARRAY[i:i + 1] for i in range(len(ARRAY))]) == whole


def test_splitter_golden_array_matches_the_sse_path():
    raw = (GOLDEN / "stream" / "array_stream.in.json").read_bytes()
    texts = split_all(JsonArrayStreamSplitter(), [raw])
    assert [json.loads(t) for t in texts] == json.loads(raw)


def test_splitter_incomplete_object_is_returned_at_flush():
    splitter = JsonArrayStreamSplitter()
    assert splitter.feed(b'[{"a": 1}, {"b": "unterminated') == ['{"a": 1}']
    assert splitter.flush() == ['{"b": "unterminated']
    assert splitter.flush() == []
    events, adapter = run(['{"b": "unterminated'])
    assert adapter.failed and json.loads(events[-1])["error"]["message"].endswith("malformed JSON event")


def test_splitter_non_json_body_is_returned_once_then_ignored():
    splitter = JsonArrayStreamSplitter()
    assert splitter.feed(b"  upstream connect error") == ["upstream connect error"]
    assert splitter.feed(b'[{"a": 1}]') == [] and splitter.flush() == []
    splitter = JsonArrayStreamSplitter()
    assert splitter.feed(b'[{"a": 1}, 42]') == ['{"a": 1}', "42]"]


def test_splitter_framing_only_and_whitespace():
    splitter = JsonArrayStreamSplitter()
    assert split_all(splitter, [b"[", b"\r\n", b"]", b"  "]) == []


def _decoded(raw: bytes, split: int) -> list:
    from app.translate.gemini.stream import GeminiStreamDecoder
    decoder = GeminiStreamDecoder()
    return [e.data for e in decoder.feed(raw[:split]) + decoder.feed(raw[split:]) + decoder.flush()]


def test_stream_decoder_reads_sse_and_json_arrays_alike_at_every_split():
    objects = [{"candidates": [{"content": {"role": "model", "parts": [{"text": "Hi é"}]}}]},
               {"candidates": [{"content": {"role": "model", "parts": [{"text": "!"}]},
                                "finishReason": "STOP"}]}]
    sse = "".join(f"data: {json.dumps(o)}\r\n\r\n" for o in objects).encode()
    array = ("\n [" + ",\n".join(json.dumps(o, indent=1) for o in objects) + "]\n").encode()
    for raw in (sse, array):
        for split in range(len(raw) + 1):
            assert [json.loads(d) for d in _decoded(raw, split)] == objects, (raw[:20], split)
