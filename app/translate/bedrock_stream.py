"""Bedrock Claude on SAP AI Core -> the Anthropic Messages wire format Claude Code expects.

Owns the per-stream state machine :class:`BedrockToAnthropicStream` that turns the ``data:``
payloads of SAP AI Core's ``/invoke-with-response-stream`` (one Anthropic event JSON per SSE
event, no ``event:`` lines; sap-ai-core.md §6.3) into the exact Anthropic SSE grammar
(clients-and-pain-points.md §2.2/§2.3), plus the two helpers for non-streaming ``/invoke``
answers: :func:`message_from_bedrock` and :func:`usage_from_message`.

What the stream translator does, per event:

* adds ``event: <type>`` from the JSON ``type``;
* relays the original data bytes untouched whenever nothing needs rewriting (every
  ``content_block_delta`` on the normal path, so thinking text and signatures stay byte-exact);
* ``message_start``: puts the client's model id into ``message.model`` (one re-serialisation
  per stream); ``message_delta``: completes ``usage`` with ``input_tokens`` and both cache counts
  copied from ``message_start`` (Bedrock sends only ``output_tokens``); ``message_stop``: drops
  ``amazon-bedrock-invocationMetrics`` (its counts go to :attr:`usage`) and writes exactly
  ``{"type":"message_stop"}``;
* holds back a text block that starts empty until its first non-empty ``text_delta``; a text
  block that stops without text is suppressed and every later block index is shifted down
  (only then are later events rewritten, and only their ``index`` changes);
* turns upstream failures into one in-band ``event: error`` and ignores everything after it:
  a ``type: error`` event, a JSON with top-level ``error``/``message`` but no ``type``, a data
  line that is not JSON, or EOF (:meth:`finish`) before ``message_stop``. ``error.type`` is
  ``overloaded_error`` when the text reads like throttling/overload, else ``api_error``; URLs
  are removed from messages.

Pure and stdlib-only: no Flask, no requests, no configuration, no payload logging.
"""

from __future__ import annotations

import json
import re
from typing import Any, Dict, Optional

from app.wire.jsoncodec import dumps_str, loads
from app.wire.sse import encode_event

__all__ = [
    "BedrockToAnthropicStream",
    "anthropic_error_event",
    "classify_error",
    "clean_error_message",
    "message_from_bedrock",
    "stream_error",
    "take_invocation_metrics",
    "take_usage",
    "usage_from_message",
]

_loads = loads
_dumps = dumps_str

USAGE_KEYS = ("input_tokens", "output_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_INPUT_USAGE_KEYS = ("input_tokens", "cache_creation_input_tokens", "cache_read_input_tokens")
_CACHE_KEYS = ("cache_creation_input_tokens", "cache_read_input_tokens")

#: ``amazon-bedrock-invocationMetrics`` key -> Anthropic usage key.
_METRICS_TO_USAGE = {
    "inputTokenCount": "input_tokens",
    "outputTokenCount": "output_tokens",
    "cacheReadInputTokenCount": "cache_read_input_tokens",
    "cacheWriteInputTokenCount": "cache_creation_input_tokens",
}

_KNOWN_EVENTS = (
    "message_start",
    "content_block_start",
    "content_block_delta",
    "content_block_stop",
    "message_delta",
    "message_stop",
    "ping",
    "error",
)
_PREFIX = {name: b"event: " + name.encode("ascii") + b"\ndata: " for name in _KNOWN_EVENTS}
_MESSAGE_STOP = b'event: message_stop\ndata: {"type":"message_stop"}\n\n'
_EVENT_NAME_RE = re.compile(r"[A-Za-z0-9_.-]{1,64}\Z")

_OVERLOAD_RE = re.compile(r"throttl|too many|rate[ _-]?limit|overload|service ?unavailable|"
                          r"resource_exhausted|\bunavailable\b", re.IGNORECASE)
_URL_RE = re.compile(r"https?://\S+", re.IGNORECASE)
_INDEX_RE = re.compile(r'("index"\s*:\s*)-?\d+')
_MAX_MESSAGE = 1000

#: ``error.type`` for EOF before ``message_stop``: transient, so the retryable type
#: (matches the example in clients-and-pain-points.md §2.5).
EOF_ERROR_TYPE = "overloaded_error"
EOF_MESSAGE = "Upstream stream ended early"


def classify_error(text: str) -> str:
    """``overloaded_error`` for throttling/overload wording, else ``api_error``."""
    return "overloaded_error" if _OVERLOAD_RE.search(text or "") else "api_error"


def clean_error_message(text: Any) -> str:
    """Upstream wording without URLs, on one line, at most ~1,000 characters."""
    text = _URL_RE.sub("[url]", str(text))
    text = " ".join(text.split())
    if len(text) > _MAX_MESSAGE:
        text = text[:_MAX_MESSAGE] + "…"
    return text


def anthropic_error_event(error_type: str, message: str) -> bytes:
    """``event: error`` with ``{"type":"error","error":{"type":..,"message":..}}``."""
    return _frame("error", _dumps({"type": "error", "error": {"type": error_type, "message": message}}))


def _frame(name: str, data: str) -> bytes:
    if "\n" in data or "\r" in data:  # multi-line JSON: keep it intact as several data lines
        return encode_event(name, data)
    prefix = _PREFIX.get(name)
    if prefix is None:
        prefix = b"event: " + name.encode("utf-8") + b"\ndata: "
    return prefix + data.encode("utf-8") + b"\n\n"


def _error_parts(obj: Dict[str, Any]) -> "tuple[str, str]":
    """(type-ish name, message) out of the error shapes AI Core / Bedrock may send."""
    err = obj.get("error")
    etype = ""
    msg: Any = None
    if isinstance(err, dict):
        etype = str(err.get("type") or err.get("code") or "")
        msg = err.get("message") or err.get("Message")
    elif isinstance(err, str):
        etype = err
        msg = obj.get("error_description")
    if not msg:
        msg = obj.get("message") or obj.get("Message")
    if msg is not None and not isinstance(msg, str):
        msg = _dumps(msg)
    return etype, (msg or "")


def stream_error(event: Dict[str, Any]) -> "tuple[str, str]":
    """(message, Anthropic error type) for an upstream ``error`` event, for translators that
    re-render it in another dialect: an Anthropic-shaped error keeps its wording; any other
    shape becomes ``Upstream stream failed: <what it said>``."""
    error = event.get("error")
    name, message = "", None
    if isinstance(error, dict):
        name = str(error.get("type") or error.get("code") or "")
        message = error.get("message") or error.get("Message")
    elif isinstance(error, str):
        name = error
    if isinstance(error, dict) and isinstance(message, str) and message:
        text = message
    else:
        message = message or event.get("message") or event.get("Message") or name
        if not isinstance(message, str):
            message = json.dumps(message)
        text = "Upstream stream failed: " + (message or "unknown error")
    return text, classify_error(name + " " + text)


def take_usage(usage: Dict[str, int], reported: Any) -> None:
    """Copy the integer Anthropic usage counts of ``reported`` (if a dict) into ``usage``."""
    if isinstance(reported, dict):
        for key in USAGE_KEYS:
            if type(reported.get(key)) is int:
                usage[key] = reported[key]


def take_invocation_metrics(usage: Dict[str, int], message_stop: Dict[str, Any]) -> None:
    """Copy the integer counts of a ``message_stop``'s ``amazon-bedrock-invocationMetrics``
    (the final input, output and cache counts) into ``usage``."""
    metrics = message_stop.get("amazon-bedrock-invocationMetrics")
    if isinstance(metrics, dict):
        for src, key in _METRICS_TO_USAGE.items():
            value = metrics.get(src)
            if type(value) is int:
                usage[key] = value


class BedrockToAnthropicStream:
    """Per-stream translator: ``feed(data) -> bytes`` per upstream SSE event, ``finish()`` at EOF.

    State exposed to the caller (read-only by convention):

    ``usage``               dict with ``input_tokens``, ``output_tokens``,
                            ``cache_creation_input_tokens``, ``cache_read_input_tokens``
                            (from ``message_start``/``message_delta``, overridden by
                            ``amazon-bedrock-invocationMetrics`` when it arrives)
    ``stop_reason``         from ``message_delta`` (``None`` until then)
    ``started``             ``message_start`` relayed
    ``first_content_seen``  first content relayed (a non-empty delta, or the start of a
                            non-text block): for time-to-first-token and pre-commit decisions
    ``done``                ``message_stop`` relayed
    ``failed``              an in-band error was written; ``error_type``/``error_message`` tell
                            which
    """

    __slots__ = (
        "model",
        "usage",
        "stop_reason",
        "started",
        "first_content_seen",
        "done",
        "failed",
        "error_type",
        "error_message",
        "_closed",
        "_fast",
        "_start_usage",
        "_held",
        "_held_obj",
        "_shift",
    )

    def __init__(self, *, model: str) -> None:
        self.model = model
        self.usage: Dict[str, int] = {k: 0 for k in USAGE_KEYS}
        self.stop_reason: Optional[str] = None
        self.started = False
        self.first_content_seen = False
        self.done = False
        self.failed = False
        self.error_type: Optional[str] = None
        self.error_message: Optional[str] = None
        self._closed = False  # after message_stop or an error: ignore input
        self._fast = False  # started, no held block, no renumbering: deltas pass raw
        self._start_usage: Dict[str, Any] = {}
        self._held: Optional[str] = None  # raw data of an empty text block start, held back
        self._held_obj: Optional[Dict[str, Any]] = None
        self._shift = 0  # suppressed empty blocks so far: later indices move down by this

    # -- public protocol ------------------------------------------------------------------

    def feed(self, data: str) -> bytes:
        """One upstream SSE event's data string -> bytes for the client (``b""`` if none)."""
        if self._closed:
            return b""
        try:
            obj = _loads(data)
        except ValueError:
            if not data.strip():
                return b""  # an empty data event carries nothing
            if data.lstrip()[:1] in ("{", "["):
                return self._fail("Upstream stream failed: malformed JSON event", "api_error")
            return self._fail("Upstream stream failed: " + data[:300])
        if type(obj) is not dict:
            return self._fail("Upstream stream failed: unexpected event " + type(obj).__name__, "api_error")
        etype = obj.get("type")
        if etype == "content_block_delta" and self._fast:  # hot path: relay raw
            self.first_content_seen = True
            return _frame("content_block_delta", data)
        if type(etype) is str:
            handler = _HANDLERS.get(etype)
            if handler is not None:
                return handler(self, obj, data)
        elif etype is None:
            if "error" in obj or "message" in obj or "Message" in obj:
                name, msg = _error_parts(obj)
                text = msg or name or "unknown error"
                return self._fail("Upstream stream failed: " + text, classify_error(name + " " + text))
            return b""  # typeless noise without an error: nothing to relay
        # An event type this module does not know: relay it named (forward compatible),
        # but only inside a message and only with a sane name.
        if self.started and type(etype) is str and _EVENT_NAME_RE.match(etype):
            return _frame(etype, data)
        return b""

    def finish(self) -> bytes:
        """Upstream EOF. Before ``message_stop`` this is a failure: returns ``event: error``."""
        if self._closed:
            return b""
        return self._fail(EOF_MESSAGE, EOF_ERROR_TYPE)

    def error_event(self, error_type: str, message: str) -> bytes:
        """Render an in-band ``event: error`` (e.g. for a read timeout) and close the stream.
        Returns ``b""`` when the stream already ended (``message_stop`` or an earlier error)."""
        if self._closed:
            return b""
        return self._fail(message, error_type)

    # -- internals ------------------------------------------------------------------------

    def _fail(self, message: str, error_type: Optional[str] = None) -> bytes:
        message = clean_error_message(message) or "Upstream stream failed"
        if error_type is None:
            error_type = classify_error(message)
        self.failed = True
        self.error_type = error_type
        self.error_message = message
        self._closed = True
        self._fast = False
        return anthropic_error_event(error_type, message)

    def _out_of_order(self, obj: Dict[str, Any]) -> bytes:
        return self._fail("Upstream stream failed: %s before message_start" % obj.get("type"), "api_error")

    def _emit_indexed(self, name: str, obj: Dict[str, Any], data: str) -> bytes:
        if self._shift:
            data = self._reindex(obj, data)
        return _frame(name, data)

    def _reindex(self, obj: Dict[str, Any], data: str) -> str:
        """Move the top-level ``index`` down by the number of suppressed blocks, changing
        nothing else in the original text (rare path: only after an empty text block)."""
        idx = obj.get("index")
        if type(idx) is not int:
            return data
        new = idx - self._shift
        out = _INDEX_RE.sub(lambda m: m.group(1) + str(new), data, count=1)
        try:
            if _loads(out).get("index") == new:
                return out
        except ValueError:
            pass
        obj = dict(obj)
        obj["index"] = new
        return _dumps(obj)

    def _on_message_start(self, obj: Dict[str, Any], data: str) -> bytes:
        if self.started:
            return self._fail("Upstream stream failed: second message_start", "api_error")
        msg = obj.get("message")
        if not isinstance(msg, dict):
            return self._fail("Upstream stream failed: message_start without message", "api_error")
        msg["model"] = self.model
        usage = msg.get("usage")
        if isinstance(usage, dict):
            for key in _CACHE_KEYS:  # absent cache counts mean no cache activity
                if usage.get(key) is None:
                    usage[key] = 0
            for key in _INPUT_USAGE_KEYS:
                if usage.get(key) is not None:
                    self._start_usage[key] = usage[key]
            self._take_usage(usage)
        self.started = True
        self._fast = self._held is None and not self._shift
        return _frame("message_start", _dumps(obj))

    def _on_block_start(self, obj: Dict[str, Any], data: str) -> bytes:
        if not self.started:
            return self._out_of_order(obj)
        block = obj.get("content_block")
        if isinstance(block, dict) and block.get("type") == "text":
            if not block.get("text"):
                self._held = data  # wait for real text (invariant 5)
                self._held_obj = obj
                self._fast = False
                return b""
        self.first_content_seen = True
        return self._emit_indexed("content_block_start", obj, data)

    def _on_block_delta(self, obj: Dict[str, Any], data: str) -> bytes:
        if not self.started:
            return self._out_of_order(obj)
        if self._held is not None:
            delta = obj.get("delta")
            if isinstance(delta, dict) and delta.get("type") == "text_delta" and not delta.get("text"):
                return b""  # still nothing to show
            start = self._emit_indexed("content_block_start", self._held_obj or {}, self._held)
            self._held = self._held_obj = None
            self._fast = not self._shift
            self.first_content_seen = True
            return start + self._emit_indexed("content_block_delta", obj, data)
        self.first_content_seen = True
        return self._emit_indexed("content_block_delta", obj, data)

    def _on_block_stop(self, obj: Dict[str, Any], data: str) -> bytes:
        if not self.started:
            return self._out_of_order(obj)
        if self._held is not None:  # the held text block closes empty: suppress it
            self._held = self._held_obj = None
            self._shift += 1
            return b""
        return self._emit_indexed("content_block_stop", obj, data)

    def _on_message_delta(self, obj: Dict[str, Any], data: str) -> bytes:
        if not self.started:
            return self._out_of_order(obj)
        if self._held is not None:  # never stopped, never shown: drop it
            self._held = self._held_obj = None
            self._shift += 1
            self._fast = False
        delta = obj.get("delta")
        if isinstance(delta, dict) and delta.get("stop_reason") is not None:
            self.stop_reason = delta["stop_reason"]
        usage = obj.get("usage")
        if not isinstance(usage, dict):
            usage = {}
        full: Dict[str, Any] = {}
        for key in _INPUT_USAGE_KEYS:
            value = usage.get(key)
            if value is None:
                value = self._start_usage.get(key)
            if value is not None:
                full[key] = value
        for key, value in usage.items():
            if key not in full:
                full[key] = value
        obj["usage"] = full
        self._take_usage(usage)
        return _frame("message_delta", _dumps(obj))

    def _on_message_stop(self, obj: Dict[str, Any], data: str) -> bytes:
        if not self.started:
            return self._out_of_order(obj)
        take_invocation_metrics(self.usage, obj)
        self.done = True
        self._closed = True
        self._fast = False
        return _MESSAGE_STOP

    def _on_ping(self, obj: Dict[str, Any], data: str) -> bytes:
        return _frame("ping", data)

    def _on_error(self, obj: Dict[str, Any], data: str) -> bytes:
        name, msg = _error_parts(obj)
        if isinstance(obj.get("error"), dict) and msg:
            text = msg  # Anthropic-shaped: keep its wording as is
        else:
            text = "Upstream stream failed: " + (msg or name or "unknown error")
        return self._fail(text, classify_error(name + " " + text))

    def _take_usage(self, usage: Dict[str, Any]) -> None:
        for key in USAGE_KEYS:
            value = usage.get(key)
            if type(value) is int:
                self.usage[key] = value


_HANDLERS = {
    "message_start": BedrockToAnthropicStream._on_message_start,
    "content_block_start": BedrockToAnthropicStream._on_block_start,
    "content_block_delta": BedrockToAnthropicStream._on_block_delta,
    "content_block_stop": BedrockToAnthropicStream._on_block_stop,
    "message_delta": BedrockToAnthropicStream._on_message_delta,
    "message_stop": BedrockToAnthropicStream._on_message_stop,
    "ping": BedrockToAnthropicStream._on_ping,
    "error": BedrockToAnthropicStream._on_error,
}


def message_from_bedrock(body: Dict[str, Any], *, model: str) -> Dict[str, Any]:
    """A non-streaming ``/invoke`` answer for the client: ``model`` set to the client's id and
    empty text blocks dropped; everything else verbatim. ``body`` is not mutated."""
    msg = dict(body)
    msg["model"] = model
    content = body.get("content")
    if isinstance(content, list):
        msg["content"] = [
            block
            for block in content
            if not (isinstance(block, dict) and block.get("type") == "text" and not block.get("text"))
        ]
    return msg


def usage_from_message(msg: Dict[str, Any]) -> Dict[str, int]:
    """The four usage counts of a message (0 where absent)."""
    usage = msg.get("usage") if isinstance(msg, dict) else None
    if not isinstance(usage, dict):
        usage = {}
    out = {}
    for key in USAGE_KEYS:
        value = usage.get(key)
        out[key] = value if type(value) is int else 0
    return out
