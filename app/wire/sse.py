"""Server-sent events: the one SSE parser of the gateway, and its encoders.

Owns the byte-level framing of ``text/event-stream`` in both directions:

* :class:`SSEDecoder` turns upstream bytes, cut anywhere, into :class:`SSEEvent` values,
  following the WHATWG "event stream interpretation" rules: ``\\n``, ``\\r\\n`` and ``\\r`` line
  endings (a ``\\r\\n`` may be split across two reads), comment lines (``:``), ``field: value``
  with one optional space after the colon, several ``data`` lines joined by ``\\n``, a leading
  BOM, and an event dispatched by a blank line. Bytes are split on line terminators first and
  only complete lines are decoded as UTF-8, so a multi-byte character cut by a read boundary is
  never decoded in halves. :meth:`SSEDecoder.flush` also emits a last event that ended without
  a blank line (upstreams that close right after their last ``data:`` line).
* :func:`encode_event`, :func:`encode_data` and :func:`encode_comment` build outgoing frames.

Pure and stdlib-only: no I/O, no logging, no configuration. Works on ``bytes`` with
``find``/``split``/``replace`` (C loops), never per byte in Python.
"""

from __future__ import annotations

from typing import List, NamedTuple, Optional, Union

__all__ = ["SSEEvent", "SSEDecoder", "encode_event", "encode_data", "encode_comment"]


class SSEEvent(NamedTuple):
    """One dispatched event. ``event`` is ``None`` when no (or an empty) ``event:`` field was
    sent; ``data`` is the ``data`` lines joined by ``\\n``; ``id`` is the last event id seen on
    the stream (WHATWG keeps it across events); ``retry`` is set only on the event that carried
    a valid ``retry:`` field."""

    event: Optional[str]
    data: str
    id: Optional[str] = None
    retry: Optional[int] = None


_LF = b"\n"
_CR = b"\r"
_BOM = "\ufeff"


class SSEDecoder:
    """Incremental SSE decoder: ``feed(bytes) -> [SSEEvent]`` per read, ``flush()`` at EOF.

    One instance per stream; all state lives on the instance.
    """

    __slots__ = ("_buf", "_skip_lf", "_bom_done", "_event", "_data", "_last_id", "_retry")

    def __init__(self) -> None:
        self._buf = bytearray()  # the unterminated tail: never contains \r or \n
        self._skip_lf = False  # previous read ended with \r: a leading \n is its pair
        self._bom_done = False
        self._event: Optional[str] = None
        self._data: List[str] = []
        self._last_id: Optional[str] = None
        self._retry: Optional[int] = None

    def feed(self, chunk: Union[bytes, bytearray, memoryview]) -> List[SSEEvent]:
        """Consume one read of upstream bytes; return the events it completed (maybe none)."""
        if not chunk:
            return []
        if type(chunk) is not bytes:
            chunk = bytes(chunk)
        if self._skip_lf:
            self._skip_lf = False
            if chunk[0] == 0x0A:
                chunk = chunk[1:]
                if not chunk:
                    return []
        has_cr = _CR in chunk
        if not has_cr and _LF not in chunk:
            self._buf += chunk  # no complete line yet (big events arrive in many reads)
            return []
        if self._buf:
            self._buf += chunk
            buf = bytes(self._buf)
        else:
            buf = chunk
        if has_cr:
            if buf[-1] == 0x0D:
                self._skip_lf = True
            buf = buf.replace(b"\r\n", _LF).replace(_CR, _LF)
        cut = buf.rfind(_LF)
        self._buf = bytearray(buf[cut + 1 :])
        # Everything before the last terminator is complete lines; terminators are ASCII and
        # never occur inside a UTF-8 sequence, so decoding this prefix in one go equals
        # decoding line by line.
        return self._lines(buf[:cut].decode("utf-8", "replace"))

    def flush(self) -> List[SSEEvent]:
        """End of stream: process an unterminated last line and emit a pending event."""
        out: List[SSEEvent] = []
        if self._buf:
            tail = bytes(self._buf)
            self._buf = bytearray()
            out = self._lines(tail.decode("utf-8", "replace"))
        if self._data:
            out.append(SSEEvent(self._event, "\n".join(self._data), self._last_id, self._retry))
        self._event = None
        self._data = []
        self._retry = None
        self._skip_lf = False
        return out

    def _lines(self, text: str) -> List[SSEEvent]:
        if not self._bom_done:
            self._bom_done = True
            if text.startswith(_BOM):
                text = text[1:]
        out: List[SSEEvent] = []
        data = self._data
        for line in text.split("\n"):
            if not line:  # blank line: dispatch
                if data:
                    out.append(SSEEvent(self._event, "\n".join(data), self._last_id, self._retry))
                    data = self._data = []
                self._event = None
                self._retry = None
            elif line.startswith("data: "):  # the common case first
                data.append(line[6:])
            elif line[0] == ":":
                continue  # comment
            else:
                field, _, value = line.partition(":")
                if value[:1] == " ":
                    value = value[1:]
                if field == "data":
                    data.append(value)
                elif field == "event":
                    self._event = value or None
                elif field == "id":
                    if "\0" not in value:
                        self._last_id = value
                elif field == "retry":
                    if value.isascii() and value.isdigit():
                        self._retry = int(value)
                # other fields are ignored (WHATWG)
        return out


def _data_lines(data: bytes) -> bytes:
    """``data:`` lines for a payload; a payload with line breaks becomes several lines, which a
    WHATWG decoder joins back with ``\\n``."""
    if _LF in data or _CR in data:
        parts = data.replace(b"\r\n", _LF).replace(_CR, _LF).split(_LF)
        return b"".join([b"data: " + p + _LF for p in parts])
    return b"data: " + data + _LF


def _as_bytes(data: Union[str, bytes]) -> bytes:
    return data.encode("utf-8") if isinstance(data, str) else bytes(data)


def encode_event(name: str, data: Union[str, bytes]) -> bytes:
    """A named event: ``event: NAME\\ndata: DATA\\n\\n`` (Anthropic dialect)."""
    if "\n" in name or "\r" in name:
        raise ValueError("SSE event name must be a single line")
    return b"event: " + name.encode("utf-8") + _LF + _data_lines(_as_bytes(data)) + _LF


def encode_data(data: Union[str, bytes]) -> bytes:
    """An unnamed event: ``data: DATA\\n\\n`` (OpenAI dialect)."""
    return _data_lines(_as_bytes(data)) + _LF


def encode_comment(text: str = "") -> bytes:
    """A comment frame (``: text\\n\\n``), ignored by every SSE client; used as a keepalive."""
    if not text:
        return b":\n\n"
    lines = text.replace("\r\n", "\n").replace("\r", "\n").split("\n")
    return "".join([(": " + ln if ln else ":") + "\n" for ln in lines]).encode("utf-8") + _LF
