"""ChatCompletionStream as the relay drives it: state the caller reads, its own in-band
errors, and nothing written after the end (the stream bytes themselves are golden files)."""

from __future__ import annotations

import json

from app.translate.openai.chat_stream import DONE, PING, ChatCompletionStream
from app.wire.sse import SSEDecoder

START = json.dumps({"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "x", "content": [],
    "stop_reason": None, "usage": {"input_tokens": 7, "cache_read_input_tokens": 3,
                                   "cache_creation_input_tokens": 2, "output_tokens": 1}}})
TEXT = [json.dumps(e) for e in (
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "message_delta", "delta": {"stop_reason": "end_turn"}, "usage": {"output_tokens": 5}},
)]
STOP = json.dumps({"type": "message_stop"})


def translator(**options) -> ChatCompletionStream:
    return ChatCompletionStream(model="gpt-4o", completion_id="chatcmpl-x", created=1, **options)


def events(raw: bytes) -> list:
    return [e.data for e in SSEDecoder().feed(raw)]


def test_normal_end_sets_done_and_anthropic_usage_for_the_request_log():
    tr = translator()
    out = b"".join(tr.feed(d) for d in [START, *TEXT, STOP])
    assert tr.done and not tr.failed
    assert out.endswith(DONE) and out.count(DONE) == 1
    assert tr.usage == {"input_tokens": 7, "output_tokens": 5, "cache_read_input_tokens": 3,
                        "cache_creation_input_tokens": 2}
    assert tr.feed(STOP) == b"" and tr.finish() == b""
    assert tr.error_event("api_error", "late") == b""


def run(tr: ChatCompletionStream) -> bytes:
    return b"".join(tr.feed(d) for d in [START, *TEXT, STOP])


def test_usage_chunk_only_when_asked():
    assert b'"usage"' not in run(translator())
    usage = json.loads(events(run(translator(include_usage=True)))[-2])
    assert usage["choices"] == [] and usage["id"] == "chatcmpl-x"
    assert usage["usage"] == {"prompt_tokens": 12, "completion_tokens": 5, "total_tokens": 17,
                              "prompt_tokens_details": {"cached_tokens": 3}}


def test_relay_error_event_is_an_openai_error_then_done_and_closes():
    tr = translator()
    tr.feed(START)
    out = tr.error_event("api_error", "Upstream stream from SAP AI Core broke off")
    assert tr.failed and not tr.done
    error, done = events(out)
    assert json.loads(error) == {"error": {
        "message": "Upstream stream from SAP AI Core broke off", "type": "server_error",
        "param": None, "code": None}}
    assert done == "[DONE]"
    assert tr.feed(TEXT[0]) == b"" and tr.finish() == b""


def test_timeout_error_keeps_its_code():
    tr = translator()
    error = json.loads(events(tr.error_event("timeout_error", "idle for 300 s"))[0])["error"]
    assert error["code"] == "timeout" and error["type"] == "server_error"


def test_error_messages_lose_urls():
    tr = translator()
    tr.feed(START)
    out = tr.feed(json.dumps({"type": "error", "error": {
        "type": "api_error", "message": "failed at https://api.ai.example.test/v2/x"}}))
    message = json.loads(events(out)[0])["error"]["message"]
    assert "https://" not in message and "[url]" in message


def test_upstream_ping_becomes_a_comment_and_unknown_events_nothing():
    tr = translator()
    assert tr.feed('{"type": "ping"}') == PING == b": ping\n\n"
    tr.feed(START)
    assert tr.feed('{"type": "some_future_event", "x": 1}') == b""
    assert tr.feed("") == b""
    assert not tr.failed
