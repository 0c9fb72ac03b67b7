"""OpenAI-dialect clients on GPT deployments: Azure's chat chunks relayed nearly as they come.

Owns :class:`ChatPassthroughStream`, a :class:`app.streaming.StreamTranslator` over the
``data:`` payloads of an Azure chat stream (sap-ai-core.md §8.3), and
:func:`completion_for_client` for non-streaming answers. The request side is
:func:`app.translate.gpt.request.prepare_chat`, which always asks Azure for streamed usage and
reports whether the client asked too.

Per upstream event the stream writes:

* a normal chunk: its bytes as received (``data: <payload>``) when its ``model`` is the
  client's id; otherwise only ``model`` is rewritten (one string replace, the JSON is
  re-serialised only when that is ambiguous);
* the filter-only first chunk (``choices: []``, no usage): nothing;
* the usage chunk (``choices: []``, ``usage``): relayed only when the client asked for usage;
  its counts go to :attr:`usage` (Anthropic keys) either way;
* ``[DONE]``: ``data: [DONE]``, exactly once, after which input is ignored;
* ``{"error": {...}}``, a non-JSON data line, ``[DONE]`` or EOF before any ``finish_reason``:
  an OpenAI error chunk (``openai_error_chunk``: ``service_unavailable_error`` for
  throttling wording and early EOF, else ``server_error``; URLs removed) then ``[DONE]``;
* EOF after a ``finish_reason`` without ``[DONE]``: just ``[DONE]``.

Keep-alive comments come from the relay (``app.translate.openai.chat_stream.PING``).
Pure: stdlib, ``app.wire`` and ``app.translate`` only; all state on the instance.
"""

from __future__ import annotations

from typing import Any, Dict, Optional, Tuple

from app.translate.bedrock_stream import USAGE_KEYS, classify_error, clean_error_message
from app.translate.gpt.response import ChunkFailure, read_chunk, usage_from_chat
from app.translate.openai.chat_stream import DONE, openai_error_chunk
from app.wire.jsoncodec import dumps_str
from app.wire.sse import encode_data

__all__ = ["ChatPassthroughStream", "completion_for_client"]

EOF_MESSAGE = "Upstream stream ended early"


class ChatPassthroughStream:
    """Per-stream relay; read by the caller: ``usage`` (Anthropic keys), ``done``
    (``[DONE]`` after a normal end), ``failed`` (an error chunk was written),
    ``finish_reason``."""

    __slots__ = ("model", "usage", "done", "failed", "finish_reason", "_include_usage",
                 "_closed", "_upstream_model", "_old_model", "_new_model")

    def __init__(self, model: str, include_usage: bool) -> None:
        self.model = model
        self.usage: Dict[str, int] = {k: 0 for k in USAGE_KEYS}
        self.done = False
        self.failed = False
        self.finish_reason: Optional[str] = None
        self._include_usage = include_usage
        self._closed = False  # after [DONE] or an error: ignore input
        self._upstream_model: Any = None  # the upstream model the replace strings are for
        self._old_model: Optional[str] = None
        self._new_model = '"model":' + dumps_str(model)

    # -- protocol ------------------------------------------------------------------------

    def feed(self, data: str) -> bytes:
        if self._closed:
            return b""
        if data.strip() == "[DONE]":
            if self.finish_reason is None:
                return self._fail(EOF_MESSAGE, "overloaded_error")
            return self._done()
        try:
            chunk = read_chunk(data)
        except ChunkFailure as failure:
            return self._fail(failure.message, failure.error_type)
        if chunk is None:
            return b""
        usage = chunk.get("usage")
        if isinstance(usage, dict):
            self.usage = usage_from_chat(usage)
        choices = chunk.get("choices")
        if not choices:
            if not isinstance(usage, dict) or not self._include_usage:
                return b""  # the filter-only first chunk, or usage the client did not ask for
            return self._relay(chunk, data)
        for choice in choices if isinstance(choices, list) else ():
            if isinstance(choice, dict) and choice.get("finish_reason") is not None:
                self.finish_reason = str(choice["finish_reason"])
        return self._relay(chunk, data)

    def finish(self) -> bytes:
        """Upstream EOF: ``[DONE]`` after a ``finish_reason``, else an error chunk first."""
        if self._closed:
            return b""
        if self.finish_reason is None:
            return self._fail(EOF_MESSAGE, "overloaded_error")
        return self._done()

    def error_event(self, error_type: str, message: str) -> bytes:
        if self._closed:
            return b""
        return self._fail(message, error_type)

    # -- internals -----------------------------------------------------------------------

    def _relay(self, chunk: dict, data: str) -> bytes:
        upstream = chunk.get("model")
        if upstream == self.model:
            return encode_data(data)
        if upstream != self._upstream_model:
            self._upstream_model = upstream
            self._old_model = '"model":' + dumps_str(upstream) if isinstance(upstream, str) \
                else None
        old = self._old_model
        if old is not None and data.count(old) == 1:
            return encode_data(data.replace(old, self._new_model, 1))
        chunk["model"] = self.model
        return encode_data(dumps_str(chunk))

    def _done(self) -> bytes:
        self.done = True
        self._closed = True
        return DONE

    def _fail(self, message: str, error_type: Optional[str] = None) -> bytes:
        message = clean_error_message(message) or "Upstream stream failed"
        self.failed = True
        self._closed = True
        return openai_error_chunk(error_type or classify_error(message), message)


def completion_for_client(completion: dict, *, model: str) -> Tuple[dict, dict]:
    """A non-streaming Azure ``chat.completion`` -> (body for the client, Anthropic-keyed usage).

    The body carries the client's ``model`` and none of Azure's ``prompt_filter_results`` /
    per-choice ``content_filter_results``; everything else is as Azure sent it. The input
    is not mutated.
    """
    body = {k: v for k, v in completion.items() if k != "prompt_filter_results"}
    body["model"] = model
    choices = body.get("choices")
    if isinstance(choices, list):
        body["choices"] = [
            {k: v for k, v in c.items() if k != "content_filter_results"}
            if isinstance(c, dict) else c
            for c in choices]
    return body, usage_from_chat(completion.get("usage"))
