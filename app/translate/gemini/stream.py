"""Gemini ``:streamGenerateContent`` -> the Bedrock-style Anthropic events AI Core sends for Claude.

Owns :class:`GeminiToAnthropic`, the upstream adapter of ``app.streaming.UpstreamAdapter``
(``feed(data) -> list[str]``, ``finish() -> list[str]``): one upstream event's data in,
zero or more Anthropic event JSON strings out, exactly as SAP AI Core's Bedrock
``/invoke-with-response-stream`` would have sent them (sap-ai-core.md §6.3), ready for
``BedrockToAnthropicStream`` or ``ChatCompletionStream``. Also owns
:class:`JsonArrayStreamSplitter` for an upstream that answers a JSON array stream
(``[{...}\\n,\\r\\n{...}\\n]``) instead of SSE.

Input (§9.3): every event is a whole ``GenerateContentResponse`` carrying a delta: text
parts, ``thought`` parts, ``functionCall`` parts (always whole); ``usageMetadata`` is
cumulative (the last one counts); the last content chunk has ``finishReason``; a usage-only
chunk without ``candidates`` may follow. A data payload may also be a JSON array of such
responses, or a piece of a JSON array (``[{...}``, ``,{...}``, ``]``).

Output:

* ``message_start`` once, at the first chunk: ``id`` = the caller's message id, ``model`` =
  the client's id, usage from that chunk (``promptTokenCount`` minus cache) or the caller's
  estimate, ``output_tokens`` at least 1;
* blocks in the order the parts come, with increasing indices, one open at a time: a run of
  thought parts -> ``thinking`` (``thinking_delta`` per part, at its end one
  ``signature_delta`` with the last ``thoughtSignature`` seen on those parts, else ``""``);
  a run of text -> ``text`` (opened at the first non-empty text); a function call -> a
  ``tool_use`` block (``input: {}``, the whole ``args`` as ONE ``input_json_delta``, stop);
  ids and names as in ``response.py``;
* at ``finishReason`` the open block is closed at once, while ``message_delta`` (stop reason
  of §9.4, final usage with input and both cache counts) and ``message_stop`` (with
  ``amazon-bedrock-invocationMetrics``) are held until the next chunk (whose usage is taken
  first, its content ignored) or :meth:`finish`, so the usage is final. A blocked prompt
  (no candidates, ``promptFeedback.blockReason``) ends the same way, with a text block
  saying so and ``refusal``;
* an ``{"error": {...}}`` payload, a non-JSON payload or a non-object -> one
  ``{"type":"error","error":{"type","message"}}`` (``overloaded_error`` for 429/503,
  ``RESOURCE_EXHAUSTED``, ``UNAVAILABLE`` or throttling wording; URLs removed) and nothing
  after it;
* :meth:`finish` without a ``finishReason`` returns nothing: the client-side translator
  reports EOF before ``message_stop`` as the failure it is.

State read by the caller: ``usage`` (Anthropic keys), ``done``, ``failed``, ``stop_reason``,
``finish_reason`` (Gemini's; log a WARNING when it is in
:data:`~app.translate.gemini.response.UNEXPECTED_FINISH_REASONS`).
Pure: stdlib, ``app.wire`` and ``app.translate`` only.
"""

from __future__ import annotations

import re
from typing import Any, Dict, List, Optional, Union

from app.translate.bedrock_stream import classify_error, clean_error_message
from app.translate.gemini.request import tool_use_id
from app.translate.gemini.response import (
    blocked_prompt_text,
    candidate_parts,
    first_candidate,
    function_call_input,
    stop_reason_for,
    usage_from_gemini,
)
from app.translate.gemini.schema import FunctionNames
from app.wire.jsoncodec import dumps_str, loads
from app.wire.sse import SSEDecoder, SSEEvent

__all__ = ["GeminiStreamDecoder", "GeminiToAnthropic", "JsonArrayStreamSplitter", "gemini_error"]

_OVERLOAD_CODES = frozenset({429, 503})
_OVERLOAD_STATUSES = frozenset({"RESOURCE_EXHAUSTED", "UNAVAILABLE"})
_THINKING, _TEXT = "thinking", "text"


def gemini_error(error: Any) -> "tuple[str, str]":
    """(Anthropic error type, message) for a Google ``error`` object (§9.6)."""
    code: Any = None
    status = ""
    message: Any = error
    if isinstance(error, dict):
        code = error.get("code")
        status = str(error.get("status") or "")
        message = error.get("message")
    if message is not None and not isinstance(message, str):
        message = dumps_str(message)
    text = clean_error_message(message or status or "Gemini stream failed")
    if code in _OVERLOAD_CODES or status in _OVERLOAD_STATUSES:
        return "overloaded_error", text
    return classify_error(f"{status} {text}"), text


class GeminiToAnthropic:
    """Per-stream adapter; all state lives on the instance (module docstring)."""

    __slots__ = ("model", "message_id", "names", "usage", "done", "failed", "stop_reason",
                 "finish_reason", "_estimate", "_started", "_ended", "_closed", "_open",
                 "_index", "_signature", "_calls")

    def __init__(self, model: str, message_id: str, names: Optional[FunctionNames] = None, *,
                 estimated_input_tokens: int = 0) -> None:
        self.model = model
        self.message_id = message_id
        self.names = names
        self.usage: Dict[str, int] = {"input_tokens": estimated_input_tokens, "output_tokens": 0,
                                      "cache_creation_input_tokens": 0,
                                      "cache_read_input_tokens": 0}
        self.done = False  # message_stop emitted
        self.failed = False  # an error event emitted
        self.stop_reason: Optional[str] = None
        self.finish_reason: Optional[str] = None
        self._estimate = estimated_input_tokens
        self._started = False
        self._ended = False  # finishReason (or a blocked prompt) seen; closing held back
        self._closed = False  # done or failed: input is ignored
        self._open: Optional[str] = None  # kind of the open block
        self._index = 0  # index of the next block
        self._signature = ""  # of the open thinking block
        self._calls = 0

    # -- protocol ------------------------------------------------------------------------

    def feed(self, data: str) -> List[str]:
        """One upstream event's data -> Anthropic event JSON strings."""
        if self._closed or not data.strip():
            return []
        try:
            obj = loads(data)
        except ValueError:
            pieces = _array_pieces(data)
            if pieces is None:
                if data.lstrip()[:1] in ("{", "["):
                    return self._fail("api_error", "Upstream stream failed: malformed JSON event")
                text = clean_error_message("Upstream stream failed: " + data[:300])
                return self._fail(classify_error(text), text)
            obj = pieces
        responses = obj if isinstance(obj, list) else [obj]
        out: List[str] = []
        for response in responses:
            if self._closed:
                break
            if not isinstance(response, dict):
                out += self._fail("api_error", "Upstream stream failed: unexpected event "
                                  + type(response).__name__)
            else:
                out += self._response(response)
        return out

    def finish(self) -> List[str]:
        """Upstream EOF: the held end after a ``finishReason``, else nothing."""
        if self._closed or not self._ended:
            return []
        return self._end_message()

    # -- one GenerateContentResponse -----------------------------------------------------

    def _response(self, resp: dict) -> List[str]:
        candidate = first_candidate(resp)
        if "error" in resp and candidate is None:
            return self._fail(*gemini_error(resp["error"]))
        out: List[str] = []
        if self._ended:  # the end proven by a later chunk: its usage, then the end
            self._take_usage(resp.get("usageMetadata"))
            return self._end_message()
        self._take_usage(resp.get("usageMetadata"))
        if not self._started:
            out.append(self._message_start())
        for part in candidate_parts(candidate):
            out += self._part(part)
        if candidate is None:
            refusal = blocked_prompt_text(resp.get("promptFeedback"))
            if refusal:
                out += self._close_block()
                out += self._text_block(refusal)
                self.stop_reason = "refusal"
                self._ended = True
            return out
        finish = candidate.get("finishReason")
        if isinstance(finish, str) and finish:
            out += self._close_block()
            self.finish_reason = finish
            self.stop_reason = stop_reason_for(finish, tool_use=self._calls > 0)
            self._ended = True
        return out

    def _part(self, part: dict) -> List[str]:
        call = part.get("functionCall")
        if isinstance(call, dict):
            return self._tool_use(part, call)
        text = part.get("text")
        if not isinstance(text, str):
            return []  # inlineData, executableCode, ...: nothing for an Anthropic client
        out: List[str] = []
        if part.get("thought") is True:
            signature = part.get("thoughtSignature")
            signature = signature if isinstance(signature, str) else ""
            if not text and not signature:
                return []
            if self._open != _THINKING:
                out += self._close_block()
                out.append(self._block_start({"type": "thinking", "thinking": ""}))
                self._open = _THINKING
                self._signature = ""
            if text:
                out.append(self._delta({"type": "thinking_delta", "thinking": text}))
            if signature:
                self._signature = signature
            return out
        if not text:
            return []
        if self._open != _TEXT:
            out += self._close_block()
            out.append(self._block_start({"type": "text", "text": ""}))
            self._open = _TEXT
        out.append(self._delta({"type": "text_delta", "text": text}))
        return out

    def _tool_use(self, part: dict, call: dict) -> List[str]:
        out = self._close_block()
        signature = part.get("thoughtSignature")
        name = str(call.get("name") or "")
        block = {"type": "tool_use",
                 "id": tool_use_id(self.message_id, self._calls,
                                   signature if isinstance(signature, str) else None),
                 "name": self.names.to_client(name) if self.names else name,
                 "input": {}}
        self._calls += 1
        out.append(self._block_start(block))
        out.append(self._delta({"type": "input_json_delta",
                                "partial_json": dumps_str(function_call_input(call))}))
        out.append(self._block_stop())
        return out

    def _text_block(self, text: str) -> List[str]:
        return [self._block_start({"type": "text", "text": ""}),
                self._delta({"type": "text_delta", "text": text}), self._block_stop()]

    # -- events --------------------------------------------------------------------------

    def _message_start(self) -> str:
        self._started = True
        usage = dict(self.usage)
        usage["output_tokens"] = max(usage["output_tokens"], 1)
        return dumps_str({"type": "message_start", "message": {
            "id": self.message_id, "type": "message", "role": "assistant", "model": self.model,
            "content": [], "stop_reason": None, "stop_sequence": None,
            "usage": {"input_tokens": usage["input_tokens"],
                      "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                      "cache_read_input_tokens": usage["cache_read_input_tokens"],
                      "output_tokens": usage["output_tokens"]}}})

    def _block_start(self, block: dict) -> str:
        return dumps_str({"type": "content_block_start", "index": self._index,
                          "content_block": block})

    def _delta(self, delta: dict) -> str:
        return dumps_str({"type": "content_block_delta", "index": self._index, "delta": delta})

    def _block_stop(self) -> str:
        event = dumps_str({"type": "content_block_stop", "index": self._index})
        self._index += 1
        return event

    def _close_block(self) -> List[str]:
        if self._open is None:
            return []
        out = []
        if self._open == _THINKING:
            out.append(self._delta({"type": "signature_delta", "signature": self._signature}))
        self._open = None
        out.append(self._block_stop())
        return out

    def _end_message(self) -> List[str]:
        usage = self.usage
        self.done = True
        self._closed = True
        return [
            dumps_str({"type": "message_delta",
                       "delta": {"stop_reason": self.stop_reason or "end_turn",
                                 "stop_sequence": None},
                       "usage": {"input_tokens": usage["input_tokens"],
                                 "cache_creation_input_tokens": 0,
                                 "cache_read_input_tokens": usage["cache_read_input_tokens"],
                                 "output_tokens": usage["output_tokens"]}}),
            dumps_str({"type": "message_stop", "amazon-bedrock-invocationMetrics": {
                "inputTokenCount": usage["input_tokens"],
                "outputTokenCount": usage["output_tokens"],
                "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
                "cacheWriteInputTokenCount": 0}}),
        ]

    def _fail(self, error_type: str, message: str) -> List[str]:
        self.failed = True
        self._closed = True
        return [dumps_str({"type": "error", "error": {"type": error_type, "message": message}})]

    def _take_usage(self, meta: Any) -> None:
        """Cumulative ``usageMetadata``: the last one wins, field group by field group."""
        if not isinstance(meta, dict):
            return
        new = usage_from_gemini(meta)
        if "promptTokenCount" in meta:
            self.usage["input_tokens"] = new["input_tokens"]
            self.usage["cache_read_input_tokens"] = new["cache_read_input_tokens"]
        if "candidatesTokenCount" in meta or "thoughtsTokenCount" in meta:
            self.usage["output_tokens"] = new["output_tokens"]


def _array_pieces(data: str) -> Optional[list]:
    """The objects of a payload that is a piece of a JSON array (``[{..}``, ``,{..}``,
    ``]``), or ``None`` when it holds anything else."""
    splitter = JsonArrayStreamSplitter()
    texts = splitter.feed(data.encode("utf-8")) + splitter.flush()
    objects = []
    for text in texts:
        try:
            objects.append(loads(text))
        except ValueError:
            return None
    return objects


# --------------------------------------------------------------------------- JSON array stream

_FRAMING_END = re.compile(rb"[^\s\[\],]")  # the first byte that is not array framing
_STRUCTURE = re.compile(rb'["{}\[\]]')
_STRING_END = re.compile(rb'["\\]')
_OPEN = frozenset(b"{[")


class JsonArrayStreamSplitter:
    """A JSON array of objects arriving in pieces -> the text of each complete object.

    ``feed(bytes) -> list[str]`` per read (chunk boundaries anywhere, also inside strings,
    escapes and multi-byte characters), ``flush() -> list[str]`` at EOF: the incomplete rest
    of an object, if any, so the adapter reports it as malformed. Array framing (``[``,
    ``,``, ``]``, whitespace) between objects is skipped; anything else there (a non-JSON
    error body) is returned as it is, once, with the rest of that read, and the splitter
    then ignores further input. Scans with ``re`` over a buffer holding only the current
    object, so a read costs time in proportion to its size.
    """

    __slots__ = ("_buf", "_pos", "_depth", "_in_string", "_escape", "_broken")

    def __init__(self) -> None:
        self._buf = bytearray()  # from the current object's "{" on (empty between objects)
        self._pos = 0  # scanned up to here
        self._depth = 0
        self._in_string = False
        self._escape = False  # the read ended right after a backslash inside a string
        self._broken = False

    def feed(self, chunk: bytes) -> List[str]:
        if self._broken or not chunk:
            return []
        buf = self._buf
        buf += chunk
        out: List[str] = []
        pos, end = self._pos, len(buf)
        while pos < end:
            if self._escape:
                self._escape = False
                pos += 1
            elif self._in_string:
                match = _STRING_END.search(buf, pos)
                if match is None:
                    pos = end
                elif buf[match.start()] == 0x5C:  # a backslash: skip what it escapes
                    pos = match.end() + 1
                    if pos > end:
                        pos = end
                        self._escape = True
                else:
                    pos = match.end()
                    self._in_string = False
            elif self._depth == 0:
                match = _FRAMING_END.search(buf, pos)
                if match is None:
                    pos = end
                elif buf[match.start()] != 0x7B:  # not "{": not an array of objects
                    self._broken = True
                    rest = bytes(buf[match.start():]).decode("utf-8", "replace")
                    self._buf = bytearray()
                    self._pos = 0
                    return out + [rest]
                else:
                    del buf[:match.start()]  # drop the framing before the object
                    end = len(buf)
                    pos = 1
                    self._depth = 1
            else:
                match = _STRUCTURE.search(buf, pos)
                if match is None:
                    pos = end
                    continue
                char = buf[match.start()]
                pos = match.end()
                if char == 0x22:
                    self._in_string = True
                elif char in _OPEN:
                    self._depth += 1
                else:
                    self._depth -= 1
                    if self._depth == 0:
                        out.append(bytes(buf[:pos]).decode("utf-8", "replace"))
                        del buf[:pos]
                        end = len(buf)
                        pos = 0
        if self._depth == 0 and not self._in_string:
            buf.clear()
            pos = 0
        self._pos = pos
        return out

    def flush(self) -> List[str]:
        rest = bytes(self._buf).decode("utf-8", "replace").strip()
        self._buf = bytearray()
        self._pos = 0
        self._depth = 0
        self._in_string = False
        self._escape = False
        return [rest] if rest and not self._broken else []


class GeminiStreamDecoder:
    """The bytes of a ``:streamGenerateContent`` answer -> one :class:`SSEEvent` per
    GenerateContentResponse, whichever form the upstream chose: server-sent events (with
    ``?alt=sse``) through the one :class:`~app.wire.sse.SSEDecoder`, or a JSON array
    (Vertex's default) through :class:`JsonArrayStreamSplitter`. The first byte that is
    not whitespace decides: ``[`` is an array. Same ``feed``/``flush`` as the SSE decoder."""

    __slots__ = ("_inner",)

    def __init__(self) -> None:
        self._inner: Any = None

    def feed(self, chunk: Union[bytes, bytearray, memoryview]) -> List[SSEEvent]:
        if self._inner is None:
            head = bytes(chunk).lstrip()
            if not head:
                return []
            self._inner = JsonArrayStreamSplitter() if head[:1] == b"[" else SSEDecoder()
            chunk = head
        return self._events(self._inner.feed(chunk))

    def flush(self) -> List[SSEEvent]:
        return [] if self._inner is None else self._events(self._inner.flush())

    @staticmethod
    def _events(items: list) -> List[SSEEvent]:
        return [item if isinstance(item, SSEEvent) else SSEEvent(None, item) for item in items]
