"""ResponsesStream as the relay drives it (state the caller reads, its own in-band errors,
nothing after the end, deltas written as they arrive), responses_usage, and both paths
through the official ``openai`` SDK over a mock transport (the stream bytes themselves are
golden files)."""

from __future__ import annotations

import json

import openai
import pytest

from app.translate.openai.responses_request import translate_responses_request
from app.translate.openai.responses_response import (item_id, response_from_message,
                                                     responses_usage)
from app.translate.openai.responses_stream import PING, ResponsesStream
from app.wire.jsoncodec import dumps
from app.wire.sse import SSEDecoder
from tests.unit.test_openai_responses_golden import EVENT, sdk_client

MODEL = "claude-sonnet-4-5"
START = json.dumps({"type": "message_start", "message": {
    "id": "msg_1", "type": "message", "role": "assistant", "model": "x", "content": [],
    "stop_reason": None, "usage": {"input_tokens": 7, "cache_read_input_tokens": 3,
                                   "cache_creation_input_tokens": 2, "output_tokens": 1}}})
TEXT = [json.dumps(e) for e in (
    {"type": "content_block_start", "index": 0, "content_block": {"type": "text", "text": ""}},
    {"type": "content_block_delta", "index": 0, "delta": {"type": "text_delta", "text": "hi"}},
    {"type": "content_block_stop", "index": 0},
    {"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "shell", "input": {}}},
    {"type": "content_block_delta", "index": 1, "delta": {
        "type": "input_json_delta", "partial_json": '{"cmd": "ls"}'}},
    {"type": "content_block_stop", "index": 1},
    {"type": "message_delta", "delta": {"stop_reason": "tool_use"}, "usage": {"output_tokens": 5}},
)]
STOP = json.dumps({"type": "message_stop"})


def request(**fields):
    return translate_responses_request({"model": MODEL, "input": "hi", **fields})


def translator(**fields) -> ResponsesStream:
    return ResponsesStream(MODEL, "resp_x", 1, request(**fields))


def events(raw: bytes) -> list:
    return [json.loads(e.data) for e in SSEDecoder().feed(raw)]


def run(tr: ResponsesStream) -> bytes:
    return b"".join(tr.feed(d) for d in [START, *TEXT, STOP])


def test_normal_end_sets_done_and_anthropic_usage_for_the_request_log():
    tr = translator()
    out = run(tr)
    assert tr.done and not tr.failed and tr.stop_reason == "tool_use"
    assert tr.usage == {"input_tokens": 7, "output_tokens": 5, "cache_read_input_tokens": 3,
                        "cache_creation_input_tokens": 2}
    last = events(out)[-1]
    assert last["type"] == "response.completed" and last["response"]["status"] == "completed"
    assert last["response"]["usage"] == {
        "input_tokens": 12, "input_tokens_details": {"cached_tokens": 3, "cache_write_tokens": 2},
        "output_tokens": 5, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 17}
    assert tr.feed(STOP) == b"" and tr.feed(TEXT[0]) == b"" and tr.finish() == b""
    assert tr.error_event("api_error", "late") == b""


def test_frames_are_named_and_sequence_numbers_count_from_zero():
    out = run(translator())
    frames = out.split(b"\n\n")[:-1]
    parsed = events(out)
    assert [f.split(b"\n")[0] for f in frames] == [b"event: " + e["type"].encode() for e in parsed]
    assert [e["sequence_number"] for e in parsed] == list(range(len(parsed)))
    for event in parsed:
        EVENT.validate_python(event)


def test_text_and_arguments_are_written_as_they_arrive():
    tr = translator()
    tr.feed(START)
    assert tr.feed(TEXT[0]) == b""  # an empty text block waits for its first text
    first = events(tr.feed(TEXT[1]))
    assert [e["type"] for e in first] == ["response.output_item.added",
                                         "response.content_part.added",
                                         "response.output_text.delta"]
    assert first[-1]["delta"] == "hi" and first[-1]["item_id"] == item_id("msg", "resp_x", 0)
    tr.feed(TEXT[2])
    assert [e["type"] for e in events(tr.feed(TEXT[3]))] == ["response.output_item.added"]
    (delta,) = events(tr.feed(TEXT[4]))
    assert delta["type"] == "response.function_call_arguments.delta"
    assert delta["delta"] == '{"cmd": "ls"}' and delta["output_index"] == 1


def test_tool_start_input_is_the_first_fragment_and_a_bare_call_gets_empty_object():
    tr = translator()
    tr.feed(START)
    started = tr.feed(json.dumps({"type": "content_block_start", "index": 0, "content_block": {
        "type": "tool_use", "id": "toolu_1", "name": "shell", "input": {"cmd": "ls"}}}))
    assert events(started)[-1]["delta"] == '{"cmd":"ls"}'
    tr.feed(json.dumps({"type": "content_block_stop", "index": 0}))
    tr.feed(json.dumps({"type": "content_block_start", "index": 1, "content_block": {
        "type": "tool_use", "id": "toolu_2", "name": "now", "input": {}}}))
    stopped = events(tr.feed(json.dumps({"type": "content_block_stop", "index": 1})))
    assert [(e["type"], e.get("delta", e.get("arguments"))) for e in stopped[:2]] == [
        ("response.function_call_arguments.delta", "{}"),
        ("response.function_call_arguments.done", "{}")]


def test_relay_error_event_is_an_error_then_response_failed_and_closes():
    tr = translator()
    tr.feed(START)
    tr.feed(TEXT[0])
    tr.feed(TEXT[1])
    out = tr.error_event("api_error", "Upstream stream from SAP AI Core broke off")
    error, failed = events(out)
    assert tr.failed and not tr.done
    assert error == {"type": "error", "sequence_number": error["sequence_number"],
                     "code": "server_error",
                     "message": "Upstream stream from SAP AI Core broke off", "param": None,
                     "error": {"type": "server_error", "code": "server_error",
                               "message": "Upstream stream from SAP AI Core broke off",
                               "param": None}}
    assert failed["type"] == "response.failed"
    assert failed["sequence_number"] == error["sequence_number"] + 1
    assert failed["response"]["status"] == "failed" and failed["response"]["output"] == []
    assert failed["response"]["error"] == {"code": "server_error",
                                           "message": "Upstream stream from SAP AI Core broke off"}
    assert tr.feed(TEXT[2]) == b"" and tr.finish() == b""


@pytest.mark.parametrize("error_type, code, kind", [
    ("rate_limit_error", "rate_limit_exceeded", "rate_limit_error"),
    ("overloaded_error", "server_error", "service_unavailable_error"),
    ("timeout_error", "server_error", "server_error"),
])
def test_error_types_map_to_openai_codes(error_type, code, kind):
    created, error, failed = events(translator().error_event(error_type, "boom"))
    assert created["type"] == "response.created"  # a failure before message_start still has one
    assert (error["code"], error["error"]["type"]) == (code, kind)
    assert failed["response"]["error"]["code"] == code


def test_failed_response_keeps_the_items_finished_so_far():
    tr = translator()
    out = b"".join(tr.feed(d) for d in [START, *TEXT[:4]]) + tr.finish()
    failed = events(out)[-1]
    assert [i["type"] for i in failed["response"]["output"]] == ["message"]
    assert failed["response"]["error"]["message"] == "Upstream stream ended early"


def test_error_messages_lose_urls_and_second_message_start_fails():
    tr = translator()
    tr.feed(START)
    out = tr.feed(json.dumps({"type": "error", "error": {
        "type": "api_error", "message": "failed at https://api.ai.example.test/v2/x"}}))
    message = events(out)[-2]["message"]
    assert "https://" not in message and "[url]" in message
    again = translator()
    again.feed(START)
    assert "second message_start" in events(again.feed(START))[-1]["response"]["error"]["message"]


def test_upstream_ping_becomes_a_comment_and_unknown_events_nothing():
    tr = translator()
    assert tr.feed('{"type": "ping"}') == PING == b": ping\n\n"
    tr.feed(START)
    assert tr.feed('{"type": "some_future_event", "x": 1}') == b""
    assert tr.feed("") == b""
    assert tr.feed(json.dumps({"type": "content_block_delta", "index": 9,
                               "delta": {"type": "text_delta", "text": "orphan"}})) == b""
    assert not tr.failed


def test_responses_usage_counts_the_whole_prompt():
    assert responses_usage({"input_tokens": 10, "cache_read_input_tokens": 100,
                            "cache_creation_input_tokens": 5, "output_tokens": 7}) == {
        "input_tokens": 115,
        "input_tokens_details": {"cached_tokens": 100, "cache_write_tokens": 5},
        "output_tokens": 7, "output_tokens_details": {"reasoning_tokens": 0}, "total_tokens": 122}
    assert responses_usage(None)["total_tokens"] == 0


# --------------------------------------------------------------------------- openai SDK


def test_sdk_iterates_a_streamed_answer_and_accumulates_it():
    answer = run(translator())
    seen = [e.type for e in sdk_client(answer).responses.create(model=MODEL, input="hi",
                                                                 stream=True)]
    assert seen[0] == "response.created" and seen[-1] == "response.completed"
    with sdk_client(answer).responses.stream(model=MODEL, input="hi") as stream:
        final = stream.get_final_response()
    assert final.output_text == "hi" and final.status == "completed"
    call = final.output[1]
    assert (call.type, call.call_id, call.name, json.loads(call.arguments)) == \
        ("function_call", "toolu_1", "shell", {"cmd": "ls"})
    assert final.usage.input_tokens == 12 and final.usage.input_tokens_details.cached_tokens == 3


@pytest.mark.parametrize("fail", [
    lambda tr: tr.error_event("overloaded_error", "Upstream stream from SAP AI Core broke off"),
    lambda tr: tr.finish(),
])
def test_sdk_raises_api_error_on_a_failed_stream(fail):
    tr = translator()
    answer = tr.feed(START) + tr.feed(TEXT[0]) + tr.feed(TEXT[1]) + fail(tr)
    stream = sdk_client(answer).responses.create(model=MODEL, input="hi", stream=True)
    with pytest.raises(openai.APIError) as info:
        for _ in stream:
            pass
    assert info.value.message in ("Upstream stream from SAP AI Core broke off",
                                  "Upstream stream ended early")


def test_sdk_parses_the_non_streaming_answer_strictly():
    message = {"id": "msg_1", "type": "message", "role": "assistant", "model": MODEL,
               "content": [{"type": "thinking", "thinking": "Hm.", "signature": "sig"},
                           {"type": "text", "text": "Done."},
                           {"type": "tool_use", "id": "toolu_9", "name": "shell",
                            "input": {"cmd": "ls"}}],
               "stop_reason": "max_tokens",
               "usage": {"input_tokens": 3, "output_tokens": 4}}
    req = request(tools=[{"type": "function", "name": "shell"}], max_output_tokens=50,
                  reasoning={"effort": "low", "summary": "auto"})
    body = response_from_message(message, model=MODEL, response_id="resp_9", created_at=5,
                                 request=req)
    response = sdk_client(dumps(body), "application/json").responses.create(model=MODEL,
                                                                           input="hi")
    assert response.id == "resp_9" and response.output_text == "Done."
    assert response.status == "incomplete"
    assert response.incomplete_details.reason == "max_output_tokens"
    assert [i.type for i in response.output] == ["reasoning", "message", "function_call"]
    assert [i.id for i in response.output] == ["rs_9_0", "msg_9_1", "fc_9_2"]
    assert response.output[0].summary[0].text == "Hm."
    assert response.tools[0].name == "shell" and response.max_output_tokens == 50
    assert response.usage.total_tokens == 7
