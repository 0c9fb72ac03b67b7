"""Bedrock Claude stream events -> OpenAI ``chat.completion.chunk`` server-sent events.

:class:`ChatCompletionStream` is one stream's state machine with the
:class:`app.streaming.StreamTranslator` protocol: ``feed(data)`` per upstream SSE event
(the ``data:`` of SAP AI Core's ``/invoke-with-response-stream``, one Anthropic event JSON
each), ``finish()`` at EOF, ``error_event()`` for the relay's own failures. What it writes
(clients-and-pain-points.md section 3):

* every chunk is ``data: <one-line JSON>`` with the same ``id``, ``created`` and ``model``
  (the client's id); ``message_start`` -> the first chunk, ``delta: {"role": "assistant",
  "content": ""}``;
* ``text_delta`` -> ``delta.content`` (empty text is never sent); ``thinking_delta`` ->
  ``delta.reasoning_content`` (signatures are dropped);
* a ``tool_use`` block -> ``delta.tool_calls`` with its own ``index`` (0, 1, ... per call),
  first ``id``, ``type``, ``function.name`` and ``arguments: ""``, then every
  ``input_json_delta`` fragment as it comes; a call that got no fragment gets ``"{}"`` at
  its block stop, so the concatenated arguments always parse;
* ``message_stop`` -> a chunk with ``delta: {}`` and the ``finish_reason``, then (only with
  ``include_usage``) a ``choices: []`` chunk with the usage, then ``data: [DONE]``;
* a failure (an upstream ``error`` event, a non-JSON or typeless error event, EOF before
  ``message_stop``, the relay's ``error_event``) -> ``data: {"error": {...}}`` in OpenAI's
  error shape, then ``data: [DONE]`` (section 3 rule 8: the official SDK raises
  ``APIError`` on the error chunk; the terminator keeps the stream well formed for clients
  that wait for it, and no ``finish_reason`` was sent, so nothing reads as a normal end);
  everything after it is ignored;
* an upstream ``ping`` -> an SSE comment, so the client still sees bytes.

Pure and stdlib-only apart from ``app.wire``: no Flask, no requests, no configuration.
"""

from __future__ import annotations

from typing import Dict, Optional

from app.translate.bedrock_stream import classify_error, clean_error_message
from app.translate.openai.chat_response import chat_usage, finish_reason
from app.translate.openai.event_stream import (EOF_MESSAGE, ERROR_TYPES, PING,
                                               AnthropicEventStream, block_index)
from app.wire.jsoncodec import dumps, dumps_str
from app.wire.sse import encode_data

__all__ = ["ChatCompletionStream", "DONE", "EOF_MESSAGE", "ERROR_TYPES", "PING",
           "openai_error_chunk"]

DONE = encode_data("[DONE]")

_TEXT, _TOOL, _THINKING = "text", "tool", "thinking"


def openai_error_chunk(error_type: str, message: str) -> bytes:
    """``data: {"error": {...}}`` for an Anthropic error type, followed by ``[DONE]``."""
    error = {"message": message, "type": ERROR_TYPES.get(error_type, "server_error"),
             "param": None, "code": "timeout" if error_type == "timeout_error" else None}
    return encode_data(dumps({"error": error})) + DONE


class ChatCompletionStream(AnthropicEventStream):
    """Per-stream translator (the shared rules are :class:`AnthropicEventStream`'s); all
    state lives on the instance.

    Read by the caller: ``usage`` (Anthropic keys, for the request log and budgets),
    ``done`` (``[DONE]`` after a normal end), ``failed`` (an error chunk was written).
    """

    __slots__ = ("_head", "_include_usage", "_blocks", "_tool_count")

    def __init__(self, *, model: str, completion_id: str, created: int,
                 include_usage: bool = False) -> None:
        super().__init__()
        self._head = {"id": completion_id, "object": "chat.completion.chunk",
                      "created": created, "model": model}
        self._include_usage = include_usage
        # Anthropic block index -> [kind, tool call index, arguments sent?]
        self._blocks: Dict[int, list] = {}
        self._tool_count = 0

    def _chunk(self, delta: dict, finish: Optional[str] = None) -> bytes:
        choice = {"index": 0, "delta": delta, "finish_reason": finish}
        return encode_data(dumps({**self._head, "choices": [choice]}))

    def _fail(self, message: str, error_type: Optional[str]) -> bytes:
        message = clean_error_message(message) or "Upstream stream failed"
        self.failed = True
        self._closed = True
        return openai_error_chunk(error_type or classify_error(message), message)

    def _start(self) -> bytes:
        return self._chunk({"role": "assistant", "content": ""})

    def _on_block_start(self, event: dict) -> bytes:
        block = event.get("content_block")
        index = block_index(event)
        if not isinstance(block, dict):
            return b""
        kind = block.get("type")
        if kind == "text":
            self._blocks[index] = [_TEXT, None, False]
            text = block.get("text")
            return self._chunk({"content": text}) if text and isinstance(text, str) else b""
        if kind == "thinking":
            self._blocks[index] = [_THINKING, None, False]
            text = block.get("thinking")
            return self._chunk({"reasoning_content": text}) \
                if text and isinstance(text, str) else b""
        if kind == "tool_use":
            call = self._tool_count
            self._tool_count += 1
            start_input = block.get("input")
            arguments = dumps_str(start_input) if start_input else ""
            self._blocks[index] = [_TOOL, call, bool(arguments)]
            return self._chunk({"tool_calls": [{
                "index": call, "id": block.get("id"), "type": "function",
                "function": {"name": block.get("name"), "arguments": arguments}}]})
        return b""  # redacted thinking, server tools: nothing an OpenAI client can use

    def _on_block_delta(self, event: dict) -> bytes:
        delta = event.get("delta")
        state = self._blocks.get(block_index(event))
        if not isinstance(delta, dict) or state is None:
            return b""
        kind = delta.get("type")
        if kind == "text_delta" and state[0] == _TEXT:
            text = delta.get("text")
            return self._chunk({"content": text}) if text else b""
        if kind == "input_json_delta" and state[0] == _TOOL:
            part = delta.get("partial_json")
            if not part:
                return b""
            state[2] = True
            return self._chunk({"tool_calls": [{"index": state[1],
                                                "function": {"arguments": part}}]})
        if kind == "thinking_delta" and state[0] == _THINKING:
            text = delta.get("thinking")
            return self._chunk({"reasoning_content": text}) if text else b""
        return b""  # signature_delta, citations_delta

    def _on_block_stop(self, event: dict) -> bytes:
        state = self._blocks.pop(block_index(event), None)
        if state is not None and state[0] == _TOOL and not state[2]:
            return self._chunk({"tool_calls": [{"index": state[1],
                                                "function": {"arguments": "{}"}}]})
        return b""

    def _complete(self) -> bytes:
        out = self._chunk({}, finish_reason(self.stop_reason))
        if self._include_usage:
            out += encode_data(dumps({**self._head, "choices": [],
                                      "usage": chat_usage(self.usage)}))
        return out + DONE
