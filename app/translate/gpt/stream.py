"""Azure OpenAI chat chunks -> the Bedrock-style Anthropic events of SAP AI Core's Claude stream.

Owns :class:`ChatChunksToAnthropic`, the streaming adapter for GPT deployments: ``feed(data)``
takes the ``data:`` payload of one Azure SSE event (sap-ai-core.md §8.3) and returns zero or
more Anthropic event JSON strings exactly as ``/invoke-with-response-stream`` would have sent
them (§6.3); ``finish()`` is called at upstream EOF. Its output is fed unchanged to
``BedrockToAnthropicStream`` (``/v1/messages`` clients) or ``ChatCompletionStream``
(``/v1/chat/completions`` clients).

* ``message_start`` at the first chunk that is not an error (Azure's filter-only first chunk
  with empty ``id`` and ``choices`` included), with ``input_tokens_estimate`` as input count
  (real counts arrive only at the end) and ``output_tokens`` 1;
* ``delta.content`` (and ``delta.refusal``): a text block opened at the first non-empty text,
  ``text_delta`` per piece; empty pieces (the role chunk) open nothing;
* ``delta.tool_calls`` by ``index``: the first fragment of a call (``id``, ``name``) closes
  the open block and opens a ``tool_use`` block (``input: {}``, id as
  :func:`~app.translate.gpt.response.anthropic_tool_id` makes it), then each ``arguments``
  piece is one ``input_json_delta`` as it comes, never buffered. Parallel calls follow one
  another, each its own block; text between calls gets its own text block. A fragment for a
  call whose block was already closed cannot be placed (Anthropic has one open block at a
  time): it fails the stream rather than corrupting arguments (OpenAI never streams that);
* ``finish_reason`` closes the open block; ``message_delta`` (stop reason per
  :func:`~app.translate.gpt.response.stop_reason_for`, full usage) and ``message_stop``
  (with ``amazon-bedrock-invocationMetrics``) are held until the usage chunk
  (``choices: []``), ``[DONE]`` or :meth:`finish` so the usage is final. Without a usage
  chunk the input count is the estimate and the output count about one token per four
  characters written;
* ``{"error": {...}}``, a data line that is not JSON, a late tool fragment -> one
  ``{"type":"error",...}`` event (``overloaded_error`` for throttling wording, else
  ``api_error``; URLs removed) and nothing after it;
* ``[DONE]`` or EOF before any ``finish_reason``: nothing more (the client translator reports
  the early end).

Pure: stdlib, ``app.wire`` and ``app.translate`` only; all state on the instance.
"""

from __future__ import annotations

from typing import Dict, List, Optional

from app.translate.bedrock_stream import USAGE_KEYS, classify_error, clean_error_message
from app.translate.gpt.response import (ChunkFailure, anthropic_tool_id, read_chunk,
                                       stop_reason_for, usage_from_chat)
from app.wire.jsoncodec import dumps_str

__all__ = ["ChatChunksToAnthropic"]

#: Characters per output token, for the count sent when Azure sent no usage chunk.
CHARS_PER_TOKEN = 4

_TEXT = "text"
_TOOL = "tool"


class ChatChunksToAnthropic:
    """Per-stream adapter; read by the caller: ``usage`` (Anthropic keys, final once ``done``),
    ``done`` (``message_stop`` emitted), ``failed`` (an error event emitted),
    ``stop_reason``."""

    __slots__ = ("model", "message_id", "usage", "done", "failed", "stop_reason",
                 "_input_estimate", "_started", "_closed", "_finish", "_usage_seen",
                 "_next_index", "_open", "_open_call", "_calls", "_chars")

    def __init__(self, model: str, message_id: str, input_tokens_estimate: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.usage: Dict[str, int] = {k: 0 for k in USAGE_KEYS}
        self.done = False
        self.failed = False
        self.stop_reason: Optional[str] = None
        self._input_estimate = max(0, int(input_tokens_estimate or 0))
        self._started = False
        self._closed = False  # after message_stop, an error or [DONE]: ignore input
        self._finish: Optional[str] = None  # Azure's finish_reason once seen
        self._usage_seen = False
        self._next_index = 0  # the Anthropic index of the next block
        self._open: Optional[str] = None  # kind of the open block: _TEXT, _TOOL or None
        self._open_call: Optional[int] = None  # Azure tool index of the open tool block
        self._calls: Dict[int, bool] = {}  # Azure tool index -> its block is still open
        self._chars = 0  # characters of text and arguments written

    # -- protocol ------------------------------------------------------------------------

    def feed(self, data: str) -> List[str]:
        if self._closed:
            return []
        if data.strip() == "[DONE]":
            if self._finish is not None:
                return self._end()
            self._closed = True  # ended without finish_reason: the client side reports it
            return []
        try:
            chunk = read_chunk(data)
        except ChunkFailure as failure:
            return self._fail(failure.message, failure.error_type)
        if chunk is None:
            return []
        out: List[str] = []
        if not self._started:
            out.append(self._message_start())
        choices = chunk.get("choices")
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("index", 0) == 0:
                out += self._on_choice(choice)
                if self._closed:
                    return out
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self._usage_seen = True
            self.usage = usage_from_chat(usage)
        if self._finish is not None and self._usage_seen:
            out += self._end()
        return out

    def finish(self) -> List[str]:
        """Upstream EOF: ends the message when Azure sent its ``finish_reason``."""
        if self._closed:
            return []
        if self._finish is not None:
            return self._end()
        self._closed = True
        return []

    # -- chunks --------------------------------------------------------------------------

    def _message_start(self) -> str:
        self._started = True
        return dumps_str({"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": self._input_estimate, "cache_creation_input_tokens": 0,
                      "cache_read_input_tokens": 0, "output_tokens": 1}}})

    def _on_choice(self, choice: dict) -> List[str]:
        if self._finish is not None:
            return []  # nothing counts after the finish chunk (Azure filter annotations)
        out: List[str] = []
        delta = choice.get("delta")
        if isinstance(delta, dict):
            for key in ("content", "refusal"):
                text = delta.get(key)
                if isinstance(text, str) and text:
                    out += self._on_text(text)
            calls = delta.get("tool_calls")
            for fragment in calls if isinstance(calls, list) else ():
                if isinstance(fragment, dict):
                    out += self._on_tool_fragment(fragment)
                    if self._closed:
                        return out
        reason = choice.get("finish_reason")
        if reason is not None:
            self._finish = reason if isinstance(reason, str) else "stop"
            out += self._close_block()
        return out

    def _on_text(self, text: str) -> List[str]:
        out: List[str] = []
        if self._open != _TEXT:
            out += self._close_block()
            out.append(self._block_start({"type": "text", "text": ""}))
            self._open = _TEXT
        self._chars += len(text)
        out.append(self._block_delta({"type": "text_delta", "text": text}))
        return out

    def _on_tool_fragment(self, fragment: dict) -> List[str]:
        index = fragment.get("index")
        if type(index) is not int:  # not sent: an id starts a call, else it continues one
            index = self._open_call if self._open_call is not None and not fragment.get("id") \
                else len(self._calls)
        function = fragment.get("function")
        if not isinstance(function, dict):
            function = {}
        arguments = function.get("arguments")
        out: List[str] = []
        if index not in self._calls:
            out += self._close_block()
            name = function.get("name")
            call_id = anthropic_tool_id(fragment.get("id"), f"toolu_{self.message_id}_{index}")
            out.append(self._block_start({"type": "tool_use", "id": call_id,
                                          "name": name if isinstance(name, str) else "",
                                          "input": {}}))
            self._open, self._open_call = _TOOL, index
            self._calls[index] = True
        elif not self._calls[index]:
            if isinstance(arguments, str) and arguments.strip():
                return self._fail("Upstream stream failed: arguments of tool call %d arrived "
                                  "after another block had started" % index, "api_error")
            return []
        if isinstance(arguments, str) and arguments:
            self._chars += len(arguments)
            out.append(self._block_delta({"type": "input_json_delta", "partial_json": arguments}))
        return out

    # -- blocks and the end ----------------------------------------------------------------

    def _block_start(self, block: dict) -> str:
        return dumps_str({"type": "content_block_start", "index": self._next_index,
                          "content_block": block})

    def _block_delta(self, delta: dict) -> str:
        return dumps_str({"type": "content_block_delta", "index": self._next_index,
                          "delta": delta})

    def _close_block(self) -> List[str]:
        if self._open is None:
            return []
        if self._open == _TOOL:
            self._calls[self._open_call] = False
        event = dumps_str({"type": "content_block_stop", "index": self._next_index})
        self._next_index += 1
        self._open = self._open_call = None
        return [event]

    def _end(self) -> List[str]:
        out = self._close_block()
        if not self._usage_seen:  # EOF or [DONE] without a usage chunk: the estimates
            self.usage = {"input_tokens": self._input_estimate,
                          "output_tokens": max(1, -(-self._chars // CHARS_PER_TOKEN)),
                          "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0}
        usage = self.usage
        self.stop_reason = stop_reason_for(self._finish, has_tool_calls=bool(self._calls))
        out.append(dumps_str({
            "type": "message_delta",
            "delta": {"stop_reason": self.stop_reason, "stop_sequence": None},
            "usage": {"input_tokens": usage["input_tokens"],
                      "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                      "cache_read_input_tokens": usage["cache_read_input_tokens"],
                      "output_tokens": usage["output_tokens"]}}))
        out.append(dumps_str({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
            "inputTokenCount": usage["input_tokens"],
            "outputTokenCount": usage["output_tokens"],
            "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
            "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"]}}))
        self.done = True
        self._closed = True
        return out

    def _fail(self, message: str, error_type: Optional[str] = None) -> List[str]:
        message = clean_error_message(message) or "Upstream stream failed"
        self.failed = True
        self._closed = True
        return [dumps_str({"type": "error", "error": {
            "type": error_type or classify_error(message), "message": message}})]
