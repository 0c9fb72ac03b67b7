"""OpenAI chat translation, golden files per direction (tests/golden/openai_chat/):

* ``request/<case>.in.json`` (OpenAI chat body) -> ``.out.json`` (Anthropic body + flags);
* ``response/<case>.in.json`` (Bedrock ``/invoke`` answer) -> ``.out.json`` (chat.completion);
* ``stream/<case>.in.sse`` (Bedrock stream recording) -> ``.out.sse`` (chunk SSE), fed through
  the one SSE decoder split at every byte offset; ``<case>.args.json`` holds translator options.

Every stream output is also checked against the chunk grammar of clients-and-pain-points.md
section 3, and every complete stream must accumulate to what the non-streaming path answers
for the same message.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest

from app.translate.bedrock_stream import message_from_bedrock
from app.translate.openai.chat_request import translate_request
from app.translate.openai.chat_response import completion_from_message
from app.translate.openai.chat_stream import ChatCompletionStream
from app.wire.sse import SSEDecoder

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "openai_chat"
MODEL = "claude-sonnet-4-5"
ID = "chatcmpl-golden"
CREATED = 1767225600


def cases(kind: str, suffix: str) -> list[str]:
    names = sorted(p.name[: -len(suffix)] for p in (GOLDEN / kind).glob("*" + suffix))
    assert names, f"no golden files in {GOLDEN / kind}"
    return names


# --------------------------------------------------------------------------- request


@pytest.mark.parametrize("case", cases("request", ".in.json"))
def test_request_golden(case):
    chat = json.loads((GOLDEN / "request" / f"{case}.in.json").read_text())
    before = copy.deepcopy(chat)
    result = translate_request(chat)
    got = {"body": result.body, "stream": result.stream, "include_usage": result.include_usage,
           "ignored": list(result.ignored)}
    assert got == json.loads((GOLDEN / "request" / f"{case}.out.json").read_text())
    assert chat == before, "the client's body was mutated"


# --------------------------------------------------------------------------- response


def complete(upstream: dict) -> dict:
    """What the route does with a non-streaming answer."""
    message = message_from_bedrock(upstream, model=MODEL)
    return completion_from_message(message, model=MODEL, completion_id=ID, created=CREATED)


@pytest.mark.parametrize("case", cases("response", ".in.json"))
def test_response_golden(case):
    upstream = json.loads((GOLDEN / "response" / f"{case}.in.json").read_text())
    assert complete(upstream) == json.loads((GOLDEN / "response" / f"{case}.out.json").read_text())


# --------------------------------------------------------------------------- stream


def stream_case(case: str) -> tuple[bytes, bytes, dict]:
    base = GOLDEN / "stream" / case
    args = base.with_name(case + ".args.json")
    options = json.loads(args.read_text()) if args.exists() else {}
    return (base.with_name(case + ".in.sse").read_bytes(),
            base.with_name(case + ".out.sse").read_bytes(), options)


def translate(chunks, options) -> tuple[bytes, ChatCompletionStream]:
    """The relay pipeline: bytes -> SSEDecoder -> translator -> client bytes."""
    decoder = SSEDecoder()
    translator = ChatCompletionStream(model=MODEL, completion_id=ID, created=CREATED, **options)
    out = []
    for chunk in chunks:
        out += [translator.feed(event.data) for event in decoder.feed(chunk)]
    out += [translator.feed(event.data) for event in decoder.flush()]
    out.append(translator.finish())
    return b"".join(out), translator


@pytest.mark.parametrize("case", cases("stream", ".in.sse"))
def test_stream_golden_split_at_every_byte_offset(case):
    raw, expected, options = stream_case(case)
    for cut in range(len(raw) + 1):
        got, _ = translate([raw[:cut], raw[cut:]], options)
        assert got == expected, f"split at byte {cut}"
    got, _ = translate([raw[i:i + 1] for i in range(len(raw))], options)
    assert got == expected, "one byte at a time"


def parse_chunks(raw: bytes) -> list:
    """Client view: every event is a data-only frame; JSON, or the [DONE] marker."""
    assert raw.endswith(b"\n\n")
    events = SSEDecoder().feed(raw)
    for frame in raw.split(b"\n\n")[:-1]:
        assert frame.startswith((b"data: ", b": ")) and b"\n" not in frame, frame
        assert not frame.startswith(b"event:")
    return ["[DONE]" if e.data == "[DONE]" else json.loads(e.data) for e in events]


def check_grammar(raw: bytes, include_usage: bool) -> dict:
    """Assert the chunk grammar; return the accumulated answer (content, tool calls, ...)."""
    events = parse_chunks(raw)
    assert events and events[-1] == "[DONE]" and events.count("[DONE]") == 1
    body = events[:-1]
    chunks = [e for e in body if "error" not in e]
    errors = [e for e in body if "error" in e]
    assert len(errors) <= 1 and (not errors or body[-1] is errors[0]), "error is last"
    for chunk in chunks:
        assert chunk["id"] == ID and chunk["created"] == CREATED and chunk["model"] == MODEL
        assert chunk["object"] == "chat.completion.chunk"
    if errors:
        error = errors[0]["error"]
        assert set(error) == {"message", "type", "param", "code"} and error["message"]
        assert all(c["choices"] == [] or c["choices"][0]["finish_reason"] is None
                   for c in chunks), "a failed stream never reports a finish_reason"
        return {"error": error}
    choice_chunks = [c for c in chunks if c["choices"]]
    assert choice_chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    finishes = [c for c in choice_chunks if c["choices"][0]["finish_reason"] is not None]
    assert finishes == [choice_chunks[-1]] and choice_chunks[-1]["choices"][0]["delta"] == {}
    usage_chunks = [c for c in chunks if not c["choices"]]
    assert len(usage_chunks) == (1 if include_usage else 0)
    if include_usage:
        assert chunks[-1] is usage_chunks[0]
    content, reasoning, calls = [], [], {}
    for chunk in choice_chunks[1:-1]:
        delta = chunk["choices"][0]["delta"]
        assert len(delta) == 1, delta
        if "content" in delta:
            assert delta["content"], "no empty content deltas"
            content.append(delta["content"])
        elif "reasoning_content" in delta:
            reasoning.append(delta["reasoning_content"])
        else:
            (call,) = delta["tool_calls"]
            index = call["index"]
            if index not in calls:
                assert index == len(calls), "tool call indices are 0, 1, ... in order"
                assert call["type"] == "function" and call["id"] and call["function"]["name"]
                calls[index] = {"id": call["id"], "type": "function",
                                "function": {"name": call["function"]["name"], "arguments": ""}}
            else:
                assert set(call) == {"index", "function"} and set(call["function"]) == {"arguments"}
            calls[index]["function"]["arguments"] += call["function"]["arguments"]
    for call in calls.values():
        assert isinstance(json.loads(call["function"]["arguments"]), dict)
    return {"content": "".join(content), "reasoning": "".join(reasoning),
            "tool_calls": [calls[i] for i in sorted(calls)],
            "finish_reason": choice_chunks[-1]["choices"][0]["finish_reason"],
            "usage": usage_chunks[0]["usage"] if usage_chunks else None}


def bedrock_message(raw: bytes) -> dict:
    """The Anthropic message a Bedrock stream describes (what /invoke would have answered)."""
    message: dict = {}
    blocks: dict = {}
    decoder = SSEDecoder()
    for event in decoder.feed(raw) + decoder.flush():
        data = json.loads(event.data)
        kind = data["type"]
        if kind == "message_start":
            message = {**data["message"], "content": []}
        elif kind == "content_block_start":
            blocks[data["index"]] = dict(data["content_block"], partial="")
        elif kind == "content_block_delta":
            block, delta = blocks[data["index"]], data["delta"]
            for key, field in (("text", "text"), ("thinking", "thinking"), ("partial", "partial_json")):
                if field in delta:
                    block[key] = block.get(key, "") + delta[field]
        elif kind == "message_delta":
            message["stop_reason"] = data["delta"]["stop_reason"]
        elif kind == "message_stop":
            metrics = data.get("amazon-bedrock-invocationMetrics", {})
            message["usage"] = {"input_tokens": metrics["inputTokenCount"],
                                "output_tokens": metrics["outputTokenCount"],
                                "cache_read_input_tokens": metrics["cacheReadInputTokenCount"],
                                "cache_creation_input_tokens": metrics["cacheWriteInputTokenCount"]}
    for index in sorted(blocks):
        block = blocks[index]
        partial = block.pop("partial")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial) if partial else {}
        message["content"].append(block)
    return message


@pytest.mark.parametrize("case", cases("stream", ".in.sse"))
def test_stream_grammar_and_same_answer_as_non_streaming(case):
    raw, expected, options = stream_case(case)
    got, translator = translate([raw], options)
    summary = check_grammar(got, options.get("include_usage", False))
    if "error" in summary:
        assert translator.failed and not translator.done
        return
    assert translator.done and not translator.failed
    whole = complete(bedrock_message(raw))["choices"][0]
    assert summary["content"] == (whole["message"]["content"] or "")
    assert summary["reasoning"] == whole["message"].get("reasoning_content", "")
    assert [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
            for c in summary["tool_calls"]] == \
           [{**c, "function": {**c["function"], "arguments": json.loads(c["function"]["arguments"])}}
            for c in whole["message"].get("tool_calls", [])]
    assert summary["finish_reason"] == whole["finish_reason"]
    if summary["usage"] is not None:
        assert summary["usage"] == complete(bedrock_message(raw))["usage"]
