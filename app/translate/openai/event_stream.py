"""What the OpenAI stream translators share: reading Bedrock Claude's Anthropic events.

:class:`AnthropicEventStream` is the half of :class:`~app.translate.openai.chat_stream.
ChatCompletionStream` and :class:`~app.translate.openai.responses_stream.ResponsesStream`
that does not depend on the dialect written: the :class:`app.streaming.StreamTranslator`
protocol (``feed``/``finish``/``error_event``, ``usage``/``done``/``failed``), parsing each
upstream ``data:`` as one event, dispatch by ``type`` to the subclass's ``_on_<event>``
methods, and the rules every dialect follows:

* an event that is not JSON, not an object, a typeless object with ``error``/``message``, or
  an ``error`` event is a failure (:meth:`_fail`, with the upstream wording where it has one);
* a content or message event before ``message_start``, or a second ``message_start``, is a
  failure; unknown event types carry nothing;
* usage is taken from ``message_start``, ``message_delta`` and the final
  ``amazon-bedrock-invocationMetrics``; ``message_delta``'s ``stop_reason`` is kept;
* after ``message_stop`` (:attr:`done`) or a failure (:attr:`failed`) all input is ignored;
  EOF before ``message_stop`` is a failure;
* an upstream ``ping`` becomes an SSE comment.

A subclass writes its dialect in ``_fail``, ``_start``, ``_on_block_start``,
``_on_block_delta``, ``_on_block_stop`` and ``_complete``. Pure and stdlib-only apart from
``app.wire``: no Flask, no requests, no configuration.
"""

from __future__ import annotations

from typing import Any, Callable, Dict, Optional

from app.translate.bedrock_stream import (USAGE_KEYS, stream_error, take_invocation_metrics,
                                          take_usage)
from app.wire.jsoncodec import loads
from app.wire.sse import encode_comment

__all__ = ["AnthropicEventStream", "EOF_MESSAGE", "ERROR_TYPES", "PING"]

#: Keep-alive for OpenAI streams: a comment, which every SSE client skips.
PING = encode_comment("ping")
EOF_MESSAGE = "Upstream stream ended early"
#: Anthropic error type (ours or the upstream's) -> OpenAI ``error.type``.
ERROR_TYPES = {"overloaded_error": "service_unavailable_error",
               "rate_limit_error": "rate_limit_error"}

#: Event type -> the method that handles it.
_METHODS = {
    "message_start": "_on_message_start",
    "content_block_start": "_on_block_start",
    "content_block_delta": "_on_block_delta",
    "content_block_stop": "_on_block_stop",
    "message_delta": "_on_message_delta",
    "message_stop": "_on_message_stop",
    "ping": "_on_ping",
    "error": "_on_error",
}
#: Events that may come before ``message_start``.
_BEFORE_START = frozenset(("message_start", "ping", "error"))


class AnthropicEventStream:
    """Per-stream state shared by the OpenAI translators; all of it lives on the instance."""

    __slots__ = ("usage", "done", "failed", "stop_reason", "_started", "_closed")

    _handlers: Dict[str, Callable[[Any, dict], bytes]] = {}

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        cls._handlers = {kind: getattr(cls, name) for kind, name in _METHODS.items()}

    def __init__(self) -> None:
        self.usage: Dict[str, int] = {k: 0 for k in USAGE_KEYS}
        self.done = False
        self.failed = False
        self.stop_reason: Optional[str] = None
        self._started = False
        self._closed = False  # after the end or a failure: ignore input

    # -- protocol ------------------------------------------------------------------------

    def feed(self, data: str) -> bytes:
        if self._closed:
            return b""
        try:
            event = loads(data)
        except ValueError:
            if not data.strip():
                return b""
            return self._fail("Upstream stream failed: " + data[:300], None)
        if not isinstance(event, dict):
            return self._fail("Upstream stream failed: unexpected event", "api_error")
        kind = event.get("type")
        handler = self._handlers.get(kind) if isinstance(kind, str) else None
        if handler is not None:
            if not self._started and kind not in _BEFORE_START:
                return self._fail(f"Upstream stream failed: {kind} before message_start",
                                  "api_error")
            return handler(self, event)
        if kind is None and any(k in event for k in ("error", "message", "Message")):
            return self._on_error(event)
        return b""  # an event type the translators do not know carries nothing for OpenAI

    def finish(self) -> bytes:
        """Upstream EOF: before ``message_stop`` this is a failure."""
        if self._closed:
            return b""
        return self._fail(EOF_MESSAGE, "overloaded_error")

    def error_event(self, error_type: str, message: str) -> bytes:
        if self._closed:
            return b""
        return self._fail(message, error_type)

    # -- what a dialect writes -----------------------------------------------------------

    def _fail(self, message: str, error_type: Optional[str]) -> bytes:
        """The dialect's failure frames; sets :attr:`failed` and stops the stream."""
        raise NotImplementedError

    def _start(self) -> bytes:
        """The dialect's first frames (``message_start`` arrived)."""
        raise NotImplementedError

    def _complete(self) -> bytes:
        """The dialect's last frames (``message_stop`` arrived, usage final)."""
        raise NotImplementedError

    def _on_block_start(self, event: dict) -> bytes:
        raise NotImplementedError

    def _on_block_delta(self, event: dict) -> bytes:
        raise NotImplementedError

    def _on_block_stop(self, event: dict) -> bytes:
        raise NotImplementedError

    # -- events every dialect handles alike ----------------------------------------------

    def _on_message_start(self, event: dict) -> bytes:
        if self._started:
            return self._fail("Upstream stream failed: second message_start", "api_error")
        message = event.get("message")
        if isinstance(message, dict):
            take_usage(self.usage, message.get("usage"))
        self._started = True
        return self._start()

    def _on_message_delta(self, event: dict) -> bytes:
        delta = event.get("delta")
        if isinstance(delta, dict) and isinstance(delta.get("stop_reason"), str):
            self.stop_reason = delta["stop_reason"]
        take_usage(self.usage, event.get("usage"))
        return b""

    def _on_message_stop(self, event: dict) -> bytes:
        take_invocation_metrics(self.usage, event)
        out = self._complete()
        self.done = True
        self._closed = True
        return out

    def _on_ping(self, event: dict) -> bytes:
        return PING

    def _on_error(self, event: dict) -> bytes:
        return self._fail(*stream_error(event))


def block_index(event: dict) -> int:
    """The ``index`` of a content block event (-1 when missing or not an integer)."""
    index = event.get("index")
    return index if type(index) is int else -1
