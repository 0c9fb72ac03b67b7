"""An Azure OpenAI ``chat.completion`` -> a Bedrock-shaped Anthropic message; usage mapping.

Owns :func:`message_from_chat_completion` (non-streaming answers of GPT deployments, in the
shape SAP AI Core's Bedrock ``/invoke`` returns, so every client-side path treats them like
a Claude answer) and the pieces the stream adapter shares with it: :func:`usage_from_chat`,
:func:`stop_reason_for`, :func:`anthropic_tool_id`, :func:`tool_input`.

* content: the ``content`` text (then a ``refusal`` text) as one ``text`` block when
  non-empty, then one ``tool_use`` block per tool call;
* tool ids: ``"toolu_" + id`` unless the call id already starts with ``toolu_``
  (:func:`app.translate.gpt.request.azure_tool_id` takes the prefix off again, so Azure sees
  its own ``call_...`` ids in the history); characters outside ``[a-zA-Z0-9_-]`` are
  rewritten with the sanitizer's :func:`~app.translate.sanitize.safe_tool_id`;
* tool input: ``arguments`` parsed as JSON. Arguments that do not parse, or parse to
  something other than an object, become ``{"arguments": "<the raw text>"}``: the turn
  stays valid for the client (Anthropic requires an object) and the text the model wrote is
  kept where the tool (and a human reading the transcript) can see it. ``""`` is ``{}``;
* ``finish_reason``: ``stop`` -> ``end_turn``, ``length`` -> ``max_tokens``, ``tool_calls``
  (and the legacy ``function_call``) -> ``tool_use``, ``content_filter`` -> ``refusal``;
  ``stop`` while tool calls are present -> ``tool_use`` (so the client runs them);
* usage (clients-and-pain-points.md §2.4): ``input_tokens = prompt_tokens - cached_tokens``,
  ``cache_read_input_tokens = cached_tokens``, ``cache_creation_input_tokens = 0``,
  ``output_tokens = completion_tokens``;
* the message id is ``msg_`` + the completion id.

An answer without ``choices[0].message`` raises :class:`GptResponseError` (the route
answers 502). Pure: no Flask, no requests, no configuration; never mutates its input.
"""

from __future__ import annotations

import json
from typing import Any

from app.translate.bedrock_stream import classify_error
from app.translate.sanitize import safe_tool_id
from app.wire.jsoncodec import dumps_str, loads

__all__ = [
    "ChunkFailure",
    "GptResponseError",
    "STOP_REASONS",
    "anthropic_tool_id",
    "message_from_chat_completion",
    "read_chunk",
    "stop_reason_for",
    "tool_input",
    "usage_from_chat",
]

class ChunkFailure(Exception):
    """A streamed Azure chunk that ends the stream: ``message`` and the Anthropic error
    ``error_type`` (``None``: classify the message) for the reader's own failure frames."""

    def __init__(self, message: str, error_type: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.error_type = error_type


def read_chunk(data: str) -> dict | None:
    """One ``data:`` of an Azure chat stream (not ``[DONE]``) as its chunk object; ``None``
    for a blank one. Raises :class:`ChunkFailure` for what is not a chunk, and for an
    ``error`` chunk (its wording kept)."""
    try:
        chunk = loads(data)
    except ValueError:
        if not data.strip():
            return None
        if data.lstrip()[:1] in ("{", "["):
            raise ChunkFailure("Upstream stream failed: malformed JSON event", "api_error")
        raise ChunkFailure("Upstream stream failed: " + data[:300])
    if not isinstance(chunk, dict):
        raise ChunkFailure("Upstream stream failed: unexpected event", "api_error")
    error = chunk.get("error")
    if error is not None:
        name, message = "", ""
        if isinstance(error, dict):
            name = " ".join(str(error[k]) for k in ("code", "type") if error.get(k))
            message = error.get("message") or error.get("Message") or ""
        elif isinstance(error, str):
            message = error
        if not isinstance(message, str):
            message = dumps_str(message)
        text = message or ("Upstream stream failed: " + (name or "unknown error"))
        raise ChunkFailure(text, classify_error(name + " " + text))
    return chunk


#: Azure ``finish_reason`` -> Anthropic ``stop_reason``; anything else is ``end_turn``.
STOP_REASONS = {
    "stop": "end_turn",
    "length": "max_tokens",
    "tool_calls": "tool_use",
    "function_call": "tool_use",
    "content_filter": "refusal",
}
TOOL_PREFIX = "toolu_"


class GptResponseError(ValueError):
    """The upstream answer is not a usable ``chat.completion`` (an upstream fault, 502)."""


def _count(mapping: Any, key: str) -> int:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if type(value) is int and value > 0 else 0


def usage_from_chat(usage: Any) -> dict:
    """OpenAI ``usage`` -> the four Anthropic usage counts (0 where absent)."""
    cached = _count(usage.get("prompt_tokens_details") if isinstance(usage, dict) else None,
                    "cached_tokens")
    prompt = _count(usage, "prompt_tokens")
    cached = min(cached, prompt)
    return {"input_tokens": prompt - cached, "output_tokens": _count(usage, "completion_tokens"),
            "cache_creation_input_tokens": 0, "cache_read_input_tokens": cached}


def stop_reason_for(finish_reason: Any, *, has_tool_calls: bool) -> str:
    reason = STOP_REASONS.get(finish_reason, "end_turn")
    if reason == "end_turn" and has_tool_calls:
        return "tool_use"
    return reason


def anthropic_tool_id(call_id: Any, fallback: str) -> str:
    """The client-facing id of an Azure tool call; ``fallback`` when Azure sent none."""
    if not isinstance(call_id, str) or not call_id:
        return safe_tool_id(fallback)
    if not call_id.startswith(TOOL_PREFIX):
        call_id = TOOL_PREFIX + call_id
    return safe_tool_id(call_id)


def tool_input(arguments: Any) -> dict:
    """A tool call's ``arguments`` -> the ``tool_use.input`` object (module docstring)."""
    if isinstance(arguments, dict):
        return arguments
    if arguments is None or (isinstance(arguments, str) and not arguments.strip()):
        return {}
    if not isinstance(arguments, str):
        return {"arguments": arguments}
    try:
        value = json.loads(arguments)
    except (ValueError, RecursionError):
        return {"arguments": arguments}
    return value if isinstance(value, dict) else {"arguments": arguments}


def _content(message: dict, message_id: str) -> list:
    blocks: list = []
    texts = [message.get(key) for key in ("content", "refusal")]
    text = "".join(t for t in texts if isinstance(t, str))
    if text:
        blocks.append({"type": "text", "text": text})
    calls = message.get("tool_calls")
    for k, call in enumerate(calls if isinstance(calls, list) else ()):
        function = call.get("function") if isinstance(call, dict) else None
        if not isinstance(function, dict):
            continue
        name = function.get("name")
        blocks.append({"type": "tool_use",
                       "id": anthropic_tool_id(call.get("id"), f"toolu_{message_id}_{k}"),
                       "name": name if isinstance(name, str) else "",
                       "input": tool_input(function.get("arguments"))})
    return blocks


def message_from_chat_completion(completion: dict, *, model: str) -> dict:
    """The Bedrock-shaped Anthropic message for an Azure ``chat.completion``."""
    choices = completion.get("choices") if isinstance(completion, dict) else None
    choice = choices[0] if isinstance(choices, list) and choices else None
    message = choice.get("message") if isinstance(choice, dict) else None
    if not isinstance(message, dict):
        raise GptResponseError("the GPT deployment answered without choices[0].message")
    upstream_id = completion.get("id")
    message_id = safe_tool_id(upstream_id) if isinstance(upstream_id, str) and upstream_id \
        else "gpt"
    content = _content(message, message_id)
    has_calls = any(block["type"] == "tool_use" for block in content)
    return {
        "id": message_id if message_id.startswith("msg_") else "msg_" + message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": content,
        "stop_reason": stop_reason_for(choice.get("finish_reason"), has_tool_calls=has_calls),
        "stop_sequence": None,
        "usage": usage_from_chat(completion.get("usage")),
    }
