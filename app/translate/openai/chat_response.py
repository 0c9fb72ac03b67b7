"""A whole Anthropic message -> an OpenAI ``chat.completion``; finish reasons and usage.

:func:`completion_from_message` builds the non-streaming answer; :data:`FINISH_REASONS`
and :func:`chat_usage` are shared with the stream translator, so a streamed answer
accumulates to the same content, finish reason and usage.

* ``choices[0].message.content``: the text blocks joined (``null`` when the answer is only
  tool calls, ``""`` when it is empty);
  ``tool_calls``: one ``function`` call per ``tool_use`` block, ``arguments`` the input
  as a JSON string; ``reasoning_content``: the text of ``thinking`` blocks, only when
  there is some (thinking happens only when the client asked with ``reasoning_effort``;
  signatures and redacted thinking are never sent).
* ``finish_reason``: ``end_turn``/``stop_sequence``/``pause_turn`` -> ``stop``,
  ``max_tokens``/``model_context_window_exceeded`` -> ``length``, ``tool_use`` ->
  ``tool_calls``, ``refusal`` -> ``content_filter``.
* ``usage.prompt_tokens`` = input + cache read + cache write tokens (OpenAI counts the
  whole prompt), ``prompt_tokens_details.cached_tokens`` = cache reads.

Pure: no Flask, no requests, no configuration; never mutates its input.
"""

from __future__ import annotations

from typing import Any

from app.wire.jsoncodec import dumps_str

__all__ = ["FINISH_REASONS", "chat_usage", "completion_from_message", "finish_reason"]

FINISH_REASONS = {
    "end_turn": "stop",
    "stop_sequence": "stop",
    "pause_turn": "stop",
    "max_tokens": "length",
    "model_context_window_exceeded": "length",
    "tool_use": "tool_calls",
    "refusal": "content_filter",
}


def finish_reason(stop_reason: Any) -> str:
    return FINISH_REASONS.get(stop_reason, "stop")


def _count(usage: Any, key: str) -> int:
    value = usage.get(key) if isinstance(usage, dict) else None
    return value if type(value) is int else 0


def chat_usage(usage: Any) -> dict:
    """Anthropic usage counts -> OpenAI ``usage``."""
    cached = _count(usage, "cache_read_input_tokens")
    prompt = _count(usage, "input_tokens") + cached + _count(usage, "cache_creation_input_tokens")
    completion = _count(usage, "output_tokens")
    return {"prompt_tokens": prompt, "completion_tokens": completion,
            "total_tokens": prompt + completion,
            "prompt_tokens_details": {"cached_tokens": cached}}


def completion_from_message(message: dict, *, model: str, completion_id: str,
                            created: int) -> dict:
    """The ``chat.completion`` for an Anthropic message (``model`` is the client's id)."""
    texts: list = []
    thinking: list = []
    calls: list = []
    content = message.get("content")
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str):
            texts.append(block["text"])
        elif kind == "thinking" and isinstance(block.get("thinking"), str):
            thinking.append(block["thinking"])
        elif kind == "tool_use":
            calls.append({"id": block.get("id"), "type": "function",
                          "function": {"name": block.get("name"),
                                       "arguments": dumps_str(block.get("input") or {})}})
    text = "".join(texts)
    reply: dict = {"role": "assistant", "content": text if text or not calls else None}
    if thinking:
        reply["reasoning_content"] = "".join(thinking)
    if calls:
        reply["tool_calls"] = calls
    return {
        "id": completion_id,
        "object": "chat.completion",
        "created": created,
        "model": model,
        "choices": [{"index": 0, "message": reply, "logprobs": None,
                     "finish_reason": finish_reason(message.get("stop_reason"))}],
        "usage": chat_usage(message.get("usage")),
    }
