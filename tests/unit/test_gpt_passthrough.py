"""ChatPassthroughStream and completion_for_client: OpenAI clients on GPT deployments.

The Azure recordings of tests/golden/gpt/stream/<case>.in.sse are relayed to
<case>.passthrough.out.sse (``include_usage`` from <case>.args.json), split at every byte
offset through the one SSE decoder; every output must obey the OpenAI chunk grammar of
clients-and-pain-points.md §3 (one ``[DONE]``, the client's model everywhere, usage only
when asked). ``UPDATE_GOLDEN=1`` rewrites the goldens; a missing or different one fails.
"""

from __future__ import annotations

import copy
import json

import pytest

from app.translate.gpt.passthrough import ChatPassthroughStream, completion_for_client
from app.translate.openai.chat_stream import DONE
from app.wire.sse import SSEDecoder
from tests.unit.test_gpt_stream import GOLDEN, cases, check_golden, options, raw_of

MODEL = "gpt-5"  # the client's id; the recordings say gpt-5.4

#: How each recording ends for the client: a finish_reason, or "error".
EXPECTED = {
    "text_only": "stop",
    "one_tool_call": "tool_calls",
    "parallel_tools_with_text": "tool_calls",
    "content_filter": "content_filter",
    "length_crlf": "length",
    "eof_after_finish": "stop",
    "error_mid_stream": "error",
    "error_rate_limited": "error",
    "eof_mid_tool": "error",
}


def relay(chunks, stream: ChatPassthroughStream) -> bytes:
    decoder = SSEDecoder()
    out = []
    for chunk in chunks:
        out += [stream.feed(event.data) for event in decoder.feed(chunk)]
    out += [stream.feed(event.data) for event in decoder.flush()]
    out.append(stream.finish())
    return b"".join(out)


def stream_for(case: str) -> ChatPassthroughStream:
    return ChatPassthroughStream(MODEL, options(case).get("include_usage", False))


def check_openai_stream(raw: bytes, *, model: str, include_usage: bool) -> dict:
    """Assert the chunk grammar; return what the client accumulates."""
    assert raw.endswith(b"\n\n")
    for frame in raw.split(b"\n\n")[:-1]:
        assert frame.startswith(b"data: ") and b"\n" not in frame, frame
    events = [e.data for e in SSEDecoder().feed(raw)]
    assert events.count("[DONE]") == 1 and events[-1] == "[DONE]"
    body = [json.loads(e) for e in events[:-1]]
    errors = [e for e in body if "error" in e]
    chunks = [e for e in body if "error" not in e]
    assert len(errors) <= 1 and (not errors or body[-1] is errors[0]), "error is last"
    assert len({c["id"] for c in chunks}) <= 1 and all(c["id"] for c in chunks), "one id, never ''"
    for c in chunks:
        assert c["model"] == model and c["object"] == "chat.completion.chunk"
    choice_chunks = [c for c in chunks if c["choices"]]
    usage_chunks = [c for c in chunks if not c["choices"]]
    assert all(c.get("usage") for c in usage_chunks), "no empty filter-only chunk"
    if not include_usage:
        assert not usage_chunks
    assert len(usage_chunks) <= 1 and (not usage_chunks or chunks[-1] is usage_chunks[0])
    finishes = [c for c in choice_chunks if c["choices"][0]["finish_reason"] is not None]
    if errors:
        assert not finishes, "a failed stream reports no finish_reason"
        return {"error": errors[0]["error"]}
    assert choice_chunks[0]["choices"][0]["delta"].get("role") == "assistant"
    assert finishes == [choice_chunks[-1]]
    calls: dict = {}
    for c in choice_chunks:
        for fragment in c["choices"][0]["delta"].get("tool_calls", []):
            if fragment["index"] not in calls:
                assert fragment["id"] and fragment["function"]["name"]
                calls[fragment["index"]] = ""
            calls[fragment["index"]] += fragment["function"].get("arguments", "")
    for arguments in calls.values():
        assert isinstance(json.loads(arguments), dict)
    return {"finish_reason": finishes[0]["choices"][0]["finish_reason"],
            "usage": usage_chunks[0]["usage"] if usage_chunks else None}


# --------------------------------------------------------------------------- goldens


def test_every_recording_has_an_expectation():
    assert set(cases()) == set(EXPECTED)


@pytest.mark.parametrize("case", cases())
def test_passthrough_golden(case):
    check_golden(GOLDEN / f"{case}.passthrough.out.sse", relay([raw_of(case)], stream_for(case)))


@pytest.mark.parametrize("case", cases())
def test_passthrough_split_at_every_byte_offset(case):
    raw = raw_of(case)
    expected = (GOLDEN / f"{case}.passthrough.out.sse").read_bytes()
    for cut in range(len(raw) + 1):
        assert relay([raw[:cut], raw[cut:]], stream_for(case)) == expected, cut
    assert relay([raw[i:i + 1] for i in range(len(raw))], stream_for(case)) == expected


@pytest.mark.parametrize("case", cases())
def test_passthrough_obeys_the_chunk_grammar(case):
    stream = stream_for(case)
    include_usage = options(case).get("include_usage", False)
    summary = check_openai_stream(relay([raw_of(case)], stream), model=MODEL,
                                  include_usage=include_usage)
    if EXPECTED[case] == "error":
        assert "error" in summary and stream.failed and not stream.done
        return
    assert stream.done and not stream.failed
    assert summary["finish_reason"] == EXPECTED[case] == stream.finish_reason
    upstream_usage = '"usage":{' in raw_of(case).decode()
    assert (summary["usage"] is not None) == (include_usage and upstream_usage)
    if upstream_usage:
        assert stream.usage["output_tokens"] > 0  # recorded even when not relayed


# --------------------------------------------------------------------------- behaviour


def chunk(delta: dict, finish=None, model="gpt-5.4", **extra) -> str:
    return json.dumps({"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1,
                       "model": model, "choices": [{"index": 0, "delta": delta,
                                                    "finish_reason": finish}], **extra},
                      separators=(",", ":"))


USAGE = json.dumps({"id": "chatcmpl-p", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-5.4", "choices": [],
                    "usage": {"prompt_tokens": 50, "completion_tokens": 5, "total_tokens": 55,
                              "prompt_tokens_details": {"cached_tokens": 20}}})
FILTER = ('{"id":"","object":"","created":0,"model":"","choices":[],'
          '"prompt_filter_results":[{"prompt_index":0,"content_filter_results":{}}]}')


def test_chunks_with_the_clients_model_are_relayed_byte_for_byte():
    stream = ChatPassthroughStream("gpt-5.4", False)
    data = chunk({"content": "hé"}).replace(",", ", ")  # odd spacing survives untouched
    assert stream.feed(data) == b"data: " + data.encode() + b"\n\n"


def test_only_the_model_is_rewritten():
    stream = ChatPassthroughStream("my-gpt", False)
    data = chunk({"content": 'say "model":"gpt-5.4"'})
    out = stream.feed(data)
    assert out == b"data: " + data.replace('"model":"gpt-5.4"', '"model":"my-gpt"', 1).encode() + b"\n\n"
    assert json.loads(out[6:])["choices"][0]["delta"]["content"] == 'say "model":"gpt-5.4"'


def test_an_ambiguous_model_string_falls_back_to_reserialising():
    stream = ChatPassthroughStream("my-gpt", False)
    data = chunk({"content": "x"}, **{'k"model': "gpt-5.4"})  # its JSON key ends in \"model
    out = json.loads(stream.feed(data)[6:])
    assert out["model"] == "my-gpt" and out['k"model'] == "gpt-5.4"
    spaced = chunk({"content": "y"}).replace('"model":"gpt-5.4"', '"model": "gpt-5.4"')
    assert json.loads(stream.feed(spaced)[6:])["model"] == "my-gpt"


def test_filter_chunk_dropped_usage_recorded_but_relayed_only_when_asked():
    for asked in (False, True):
        stream = ChatPassthroughStream("gpt-5.4", asked)
        assert stream.feed(FILTER) == b""
        stream.feed(chunk({}, "stop"))
        out = stream.feed(USAGE)
        assert (out == b"data: " + USAGE.encode() + b"\n\n") if asked else out == b""
        assert stream.usage == {"input_tokens": 30, "output_tokens": 5,
                                "cache_creation_input_tokens": 0, "cache_read_input_tokens": 20}
        assert stream.feed("[DONE]") == DONE and stream.done
        assert stream.feed("[DONE]") == b"" and stream.finish() == b""


def test_eof_after_finish_is_just_done_and_before_it_an_error_first():
    stream = ChatPassthroughStream("gpt-5.4", False)
    stream.feed(chunk({"content": "a"}, "stop"))
    assert stream.finish() == DONE and stream.done and not stream.failed
    stream = ChatPassthroughStream("gpt-5.4", False)
    stream.feed(chunk({"content": "a"}))
    error, done = [e.data for e in SSEDecoder().feed(stream.finish())]
    assert json.loads(error)["error"]["type"] == "service_unavailable_error" and done == "[DONE]"
    assert stream.failed and not stream.done


def test_done_before_any_finish_reason_is_an_error():
    stream = ChatPassthroughStream("gpt-5.4", False)
    out = stream.feed("[DONE]")
    assert out.count(b"[DONE]") == 1 and b'"error"' in out and stream.failed


def test_upstream_error_chunk_becomes_an_openai_error_then_done():
    stream = ChatPassthroughStream("gpt-5.4", False)
    stream.feed(chunk({"content": "a"}))
    out = stream.feed(json.dumps({"error": {"message": "Rate limit is exceeded. See https://x.test/",
                                            "type": None, "code": "429"}}))
    error, done = [e.data for e in SSEDecoder().feed(out)]
    assert json.loads(error) == {"error": {"message": "Rate limit is exceeded. See [url]",
                                           "type": "service_unavailable_error", "param": None,
                                           "code": None}}
    assert done == "[DONE]" and stream.failed
    assert stream.feed(chunk({"content": "late"})) == b"" and stream.finish() == b""


def test_relay_error_event_closes_and_is_written_once():
    stream = ChatPassthroughStream("gpt-5.4", False)
    out = stream.error_event("timeout_error", "idle for 300 s")
    assert json.loads(SSEDecoder().feed(out)[0].data)["error"]["code"] == "timeout"
    assert stream.error_event("api_error", "again") == b""


@pytest.mark.parametrize("data", ["not json", '{"cut": ', "[1]"])
def test_bad_data_lines_fail(data):
    stream = ChatPassthroughStream("gpt-5.4", False)
    out = stream.feed(data)
    assert b'"error"' in out and out.endswith(DONE) and stream.failed


def test_completion_for_client():
    completion = {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "gpt-5.4",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hi!"},
                     "content_filter_results": {}}],
        "usage": {"prompt_tokens": 8, "completion_tokens": 3, "total_tokens": 11,
                  "prompt_tokens_details": {"cached_tokens": 2},
                  "completion_tokens_details": {"reasoning_tokens": 0}},
        "prompt_filter_results": [{"prompt_index": 0, "content_filter_results": {}}]}
    before = copy.deepcopy(completion)
    body, usage = completion_for_client(completion, model="gpt-5")
    assert body == {
        "id": "chatcmpl-1", "object": "chat.completion", "created": 1767225600, "model": "gpt-5",
        "choices": [{"index": 0, "finish_reason": "stop",
                     "message": {"role": "assistant", "content": "Hi!"}}],
        "usage": before["usage"]}
    assert usage == {"input_tokens": 6, "output_tokens": 3, "cache_creation_input_tokens": 0,
                     "cache_read_input_tokens": 2}
    assert completion == before
