"""ChatChunksToAnthropic: Azure chat chunk recordings (tests/golden/gpt/stream/<case>.in.sse,
sap-ai-core.md §8.3) -> Bedrock-style Anthropic events (<case>.adapter.out.sse, one ``data:``
line per event, the way SAP AI Core's Bedrock stream would have sent them).

Every golden is checked split at every byte offset through the one SSE decoder, then fed
through both client translators (BedrockToAnthropicStream, ChatCompletionStream) whose
outputs must obey their grammars, and a complete stream must describe the same message as
the non-streaming translation of the same answer. ``UPDATE_GOLDEN=1`` rewrites the goldens
(review the diff); a missing or different golden fails.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from app.translate.bedrock_stream import BedrockToAnthropicStream
from app.translate.gpt.response import message_from_chat_completion
from app.translate.gpt.stream import ChatChunksToAnthropic
from app.translate.openai.chat_stream import ChatCompletionStream
from app.wire.sse import SSEDecoder, encode_data
from tests.unit.test_bedrock_stream import validate_anthropic_stream
from tests.unit.test_openai_chat_golden import CREATED, ID, MODEL as CHAT_MODEL, \
    bedrock_message, check_grammar

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gpt" / "stream"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
MODEL = "gpt-5"  # the client's id
MESSAGE_ID = "msg_gpt_golden"

#: How each recording must end for the client: a stop reason, or (error, error type).
EXPECTED = {
    "text_only": "end_turn",
    "one_tool_call": "tool_use",
    "parallel_tools_with_text": "tool_use",
    "content_filter": "refusal",
    "length_crlf": "max_tokens",
    "eof_after_finish": "end_turn",
    "error_mid_stream": ("error", "api_error"),
    "error_rate_limited": ("error", "overloaded_error"),
    "eof_mid_tool": ("error", "overloaded_error"),
}


def cases() -> list[str]:
    names = sorted(p.name[: -len(".in.sse")] for p in GOLDEN.glob("*.in.sse"))
    assert names, f"no recordings in {GOLDEN}"
    return names


def options(case: str) -> dict:
    path = GOLDEN / f"{case}.args.json"
    return json.loads(path.read_text()) if path.exists() else {}


def check_golden(path: Path, got: bytes) -> None:
    if UPDATE:
        path.write_bytes(got)
    assert path.exists(), f"missing golden {path.name} (UPDATE_GOLDEN=1 writes it)"
    assert got == path.read_bytes(), f"{path.name} differs (UPDATE_GOLDEN=1 rewrites it)"


def adapter_for(case: str) -> ChatChunksToAnthropic:
    return ChatChunksToAnthropic(MODEL, MESSAGE_ID,
                                 options(case).get("input_tokens_estimate", 0))


def adapt(chunks, adapter: ChatChunksToAnthropic) -> list[str]:
    """bytes -> SSEDecoder -> adapter, then finish() at EOF."""
    decoder = SSEDecoder()
    out: list[str] = []
    for chunk in chunks:
        for event in decoder.feed(chunk):
            out += adapter.feed(event.data)
    for event in decoder.flush():
        out += adapter.feed(event.data)
    return out + adapter.finish()


def as_sse(events: list[str]) -> bytes:
    return b"".join(encode_data(e) for e in events)


def through(events: list[str], translator) -> bytes:
    """What app.streaming.AdaptedStream does: adapter events into the client translator,
    and the client translator's own finish() when the stream did not end properly."""
    out = b"".join(translator.feed(e) for e in events)
    if not (translator.done or translator.failed):
        out += translator.finish()
    return out


def raw_of(case: str) -> bytes:
    return (GOLDEN / f"{case}.in.sse").read_bytes()


# --------------------------------------------------------------------------- goldens


def test_every_recording_has_an_expectation():
    assert set(cases()) == set(EXPECTED)


@pytest.mark.parametrize("case", cases())
def test_adapter_golden(case):
    check_golden(GOLDEN / f"{case}.adapter.out.sse", as_sse(adapt([raw_of(case)], adapter_for(case))))


@pytest.mark.parametrize("case", cases())
def test_adapter_split_at_every_byte_offset(case):
    raw = raw_of(case)
    expected = (GOLDEN / f"{case}.adapter.out.sse").read_bytes()
    for cut in range(len(raw) + 1):
        assert as_sse(adapt([raw[:cut], raw[cut:]], adapter_for(case))) == expected, cut
    one_byte = [raw[i:i + 1] for i in range(len(raw))]
    assert as_sse(adapt(one_byte, adapter_for(case))) == expected, "one byte at a time"


@pytest.mark.parametrize("case", cases())
def test_anthropic_client_stream_obeys_the_grammar(case):
    adapter = adapter_for(case)
    events = adapt([raw_of(case)], adapter)
    client = BedrockToAnthropicStream(model=MODEL)
    parsed = validate_anthropic_stream(through(events, client), model=MODEL)
    expected = EXPECTED[case]
    last = parsed[-1][1]
    if isinstance(expected, tuple):
        assert last["type"] == "error" and last["error"]["type"] == expected[1]
        assert client.failed and not adapter.done
        assert "https://" not in last["error"]["message"]
        return
    assert last["type"] == "message_stop" and client.done and adapter.done
    delta = [obj for name, obj, _ in parsed if name == "message_delta"][-1]
    assert delta["delta"]["stop_reason"] == expected == adapter.stop_reason
    assert delta["usage"] == {k: adapter.usage[k] for k in delta["usage"]}
    assert client.usage == adapter.usage


@pytest.mark.parametrize("case", cases())
def test_openai_client_stream_obeys_the_grammar(case):
    adapter = adapter_for(case)
    events = adapt([raw_of(case)], adapter)
    client = ChatCompletionStream(model=CHAT_MODEL, completion_id=ID, created=CREATED,
                                  include_usage=True)
    summary = check_grammar(through(events, client), include_usage=True)
    if isinstance(EXPECTED[case], tuple):
        assert "error" in summary and client.failed
        return
    assert client.done and client.usage == adapter.usage
    finish = {"end_turn": "stop", "tool_use": "tool_calls", "refusal": "content_filter",
              "max_tokens": "length"}[EXPECTED[case]]
    assert summary["finish_reason"] == finish


def completion_from_chunks(raw: bytes) -> dict:
    """What an OpenAI SDK accumulates from an Azure stream: the chat.completion it describes."""
    message: dict = {"role": "assistant", "content": None}
    calls: dict = {}
    completion: dict = {"choices": [{"index": 0, "message": message, "finish_reason": None}]}
    decoder = SSEDecoder()
    for event in decoder.feed(raw) + decoder.flush():
        if event.data == "[DONE]":
            break
        chunk = json.loads(event.data)
        if chunk.get("id"):
            completion["id"] = chunk["id"]
        if chunk.get("usage"):
            completion["usage"] = chunk["usage"]
        for choice in chunk.get("choices", []):
            delta = choice["delta"]
            if delta.get("content"):
                message["content"] = (message["content"] or "") + delta["content"]
            for fragment in delta.get("tool_calls", []):
                call = calls.setdefault(fragment["index"], {"id": fragment.get("id"), "type": "function",
                                                            "function": {"name": "", "arguments": ""}})
                call["function"]["name"] += fragment["function"].get("name", "")
                call["function"]["arguments"] += fragment["function"].get("arguments", "")
            if choice["finish_reason"]:
                completion["choices"][0]["finish_reason"] = choice["finish_reason"]
    if calls:
        message["tool_calls"] = [calls[i] for i in sorted(calls)]
    return completion


def text_and_calls(message: dict) -> tuple:
    blocks = message["content"]
    return ("".join(b["text"] for b in blocks if b["type"] == "text"),
            [b for b in blocks if b["type"] == "tool_use"])


@pytest.mark.parametrize("case", [c for c in EXPECTED if not isinstance(EXPECTED[c], tuple)])
def test_stream_describes_the_same_message_as_the_non_streaming_answer(case):
    raw = raw_of(case)
    streamed = bedrock_message(as_sse(adapt([raw], adapter_for(case))))
    completion = completion_from_chunks(raw)
    whole = message_from_chat_completion(completion, model=MODEL)
    # a chat.completion holds one content string, then the calls: compare text and calls
    assert text_and_calls(streamed) == text_and_calls(whole)
    assert streamed["stop_reason"] == whole["stop_reason"]
    if "usage" in completion:
        assert streamed["usage"] == whole["usage"]


# --------------------------------------------------------------------------- behaviour


def chunk(delta: dict, finish=None, **extra) -> str:
    return json.dumps({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1,
                       "model": "gpt-5.4", "choices": [{"index": 0, "delta": delta,
                                                        "finish_reason": finish}],
                       "usage": None, **extra})


USAGE = json.dumps({"id": "chatcmpl-t", "object": "chat.completion.chunk", "created": 1,
                    "model": "gpt-5.4", "choices": [],
                    "usage": {"prompt_tokens": 100, "completion_tokens": 7, "total_tokens": 107,
                              "prompt_tokens_details": {"cached_tokens": 60}}})


def types(events: list[str]) -> list[str]:
    return [json.loads(e)["type"] for e in events]


def test_argument_pieces_are_streamed_as_they_come_and_the_end_waits_for_usage():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1", 90)
    start = adapter.feed(chunk({"role": "assistant", "content": ""}))
    assert types(start) == ["message_start"]
    assert json.loads(start[0])["message"]["usage"] == {
        "input_tokens": 90, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "output_tokens": 1}
    opened = adapter.feed(chunk({"tool_calls": [{"index": 0, "id": "call_9", "type": "function",
                                                 "function": {"name": "Read", "arguments": ""}}]}))
    assert [json.loads(e) for e in opened] == [{"type": "content_block_start", "index": 0,
        "content_block": {"type": "tool_use", "id": "toolu_call_9", "name": "Read", "input": {}}}]
    for piece in ('{"pa', 'th": "a', '.py"}'):
        (event,) = adapter.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": piece}}]}))
        assert json.loads(event)["delta"] == {"type": "input_json_delta", "partial_json": piece}
    assert types(adapter.feed(chunk({}, "tool_calls"))) == ["content_block_stop"]
    assert not adapter.done
    end = adapter.feed(USAGE)
    assert types(end) == ["message_delta", "message_stop"] and adapter.done
    assert json.loads(end[0])["usage"] == {"input_tokens": 40, "cache_creation_input_tokens": 0,
                                           "cache_read_input_tokens": 60, "output_tokens": 7}
    assert json.loads(end[1])["amazon-bedrock-invocationMetrics"] == {
        "inputTokenCount": 40, "outputTokenCount": 7, "cacheReadInputTokenCount": 60,
        "cacheWriteInputTokenCount": 0}
    assert adapter.feed("[DONE]") == [] and adapter.finish() == []


def test_usage_in_the_finish_chunk_ends_at_once():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    adapter.feed(chunk({"content": "ok"}))
    usage = json.loads(USAGE)["usage"]
    assert types(adapter.feed(chunk({}, "stop", usage=usage))) == [
        "content_block_stop", "message_delta", "message_stop"]


def test_done_without_usage_ends_with_estimates():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1", 500)
    adapter.feed(chunk({"content": "x" * 41}))
    adapter.feed(chunk({}, "stop"))
    end = adapter.feed("[DONE]")
    assert types(end) == ["message_delta", "message_stop"]
    assert json.loads(end[0])["usage"] == {"input_tokens": 500, "cache_creation_input_tokens": 0,
                                           "cache_read_input_tokens": 0, "output_tokens": 11}


def test_done_before_any_finish_reason_adds_nothing_and_the_client_side_reports_it():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    events = adapter.feed(chunk({"content": "half"})) + adapter.feed("[DONE]") + adapter.finish()
    assert types(events) == ["message_start", "content_block_start", "content_block_delta"]
    assert not adapter.done and not adapter.failed
    client = BedrockToAnthropicStream(model="gpt-5")
    last = validate_anthropic_stream(through(events, client), model="gpt-5")[-1][1]
    assert last["type"] == "error"


def test_error_before_anything_is_the_only_event():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    (event,) = adapter.feed(json.dumps({"error": {"code": "429", "message": "Rate limit is exceeded."}}))
    assert json.loads(event) == {"type": "error", "error": {
        "type": "overloaded_error", "message": "Rate limit is exceeded."}}
    assert adapter.failed and adapter.feed(chunk({"content": "late"})) == []
    assert adapter.finish() == []


@pytest.mark.parametrize("data, message", [
    ("not json at all", "Upstream stream failed: not json at all"),
    ('{"truncated": ', "Upstream stream failed: malformed JSON event"),
    ("[1, 2]", "Upstream stream failed: unexpected event"),
])
def test_bad_data_lines_fail_the_stream(data, message):
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    adapter.feed(chunk({"content": "a"}))
    (event,) = adapter.feed(data)
    assert json.loads(event)["error"]["message"] == message and adapter.failed


def test_blank_data_is_ignored():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    assert adapter.feed("") == [] and adapter.feed("  ") == []


def test_arguments_for_an_already_closed_call_fail_instead_of_corrupting_it():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    first = {"index": 0, "id": "call_a", "type": "function", "function": {"name": "A", "arguments": "{"}}
    second = {"index": 1, "id": "call_b", "type": "function", "function": {"name": "B", "arguments": "{}"}}
    adapter.feed(chunk({"tool_calls": [first]}))
    adapter.feed(chunk({"tool_calls": [second]}))
    events = adapter.feed(chunk({"tool_calls": [{"index": 0, "function": {"arguments": "}"}}]}))
    assert types(events) == ["error"] and adapter.failed
    assert json.loads(events[0])["error"]["type"] == "api_error"


def test_two_calls_in_one_chunk_and_fragments_without_index():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    events = adapter.feed(chunk({"tool_calls": [
        {"index": 0, "id": "call_a", "function": {"name": "A", "arguments": "{}"}},
        {"index": 1, "id": "call_b", "function": {"name": "B", "arguments": ""}}]}))
    events += adapter.feed(chunk({"tool_calls": [{"function": {"arguments": '{"x": 1}'}}]}))
    events += adapter.feed(chunk({"tool_calls": [{"id": "call_c", "function": {"name": "C"}}]}))
    events += adapter.feed(chunk({}, "tool_calls")) + adapter.finish()
    parsed = [json.loads(e) for e in events]
    starts = [(p["index"], p["content_block"]["id"]) for p in parsed if p["type"] == "content_block_start"]
    assert starts == [(0, "toolu_call_a"), (1, "toolu_call_b"), (2, "toolu_call_c")]
    deltas = [(p["index"], p["delta"]["partial_json"]) for p in parsed if p["type"] == "content_block_delta"]
    assert deltas == [(0, "{}"), (1, '{"x": 1}')]
    validate_anthropic_stream(through(events, BedrockToAnthropicStream(model="gpt-5")), model="gpt-5")


def test_a_call_without_id_gets_a_stable_one_and_ids_keep_toolu():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_7")
    events = adapter.feed(chunk({"tool_calls": [{"index": 0, "function": {"name": "A"}}]}))
    events += adapter.feed(chunk({"tool_calls": [{"index": 1, "id": "toolu_own", "function": {"name": "B"}}]}))
    ids = [json.loads(e)["content_block"]["id"] for e in events if '"content_block_start"' in e]
    assert ids == ["toolu_msg_7_0", "toolu_own"]


def test_text_between_calls_gets_its_own_block_and_refusal_is_text():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    events = adapter.feed(chunk({"refusal": "I can't"}))
    events += adapter.feed(chunk({"tool_calls": [{"index": 0, "id": "call_a", "function": {"name": "A"}}]}))
    events += adapter.feed(chunk({"content": " but this"}))
    events += adapter.feed(chunk({}, "stop")) + adapter.finish()
    parsed = [json.loads(e) for e in events]
    blocks = [p["content_block"]["type"] for p in parsed if p["type"] == "content_block_start"]
    assert blocks == ["text", "tool_use", "text"]
    assert adapter.stop_reason == "tool_use"  # "stop" with tool calls: the client must run them
    validate_anthropic_stream(through(events, BedrockToAnthropicStream(model="gpt-5")), model="gpt-5")


def test_nothing_after_the_finish_chunk_counts_but_its_usage():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1")
    adapter.feed(chunk({"content": "a"}))
    adapter.feed(chunk({}, "stop"))
    assert adapter.feed(chunk({"content": "ignored"}, content_filter_results={})) == []
    assert types(adapter.feed(USAGE)) == ["message_delta", "message_stop"]


def test_an_empty_answer_is_a_message_without_blocks():
    adapter = ChatChunksToAnthropic("gpt-5", "msg_1", 3)
    events = adapter.feed(chunk({"role": "assistant", "content": ""}))
    events += adapter.feed(chunk({}, "length")) + adapter.feed(USAGE)
    assert types(events) == ["message_start", "message_delta", "message_stop"]
    validate_anthropic_stream(through(events, BedrockToAnthropicStream(model="gpt-5")), model="gpt-5")


def test_each_stream_has_its_own_state():
    one, two = ChatChunksToAnthropic("gpt-5", "msg_1"), ChatChunksToAnthropic("gpt-5", "msg_2")
    one.feed(chunk({"content": "a"}))
    one.feed(chunk({}, "stop"))
    one.feed(USAGE)
    assert one.done and not two.done and two.usage["output_tokens"] == 0
    assert types(two.feed(chunk({"content": "b"}))) == ["message_start", "content_block_start",
                                                        "content_block_delta"]
