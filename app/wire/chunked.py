"""HTTP/1.1 chunked transfer coding, undone incrementally: the one chunked decoder of the gateway.

:class:`ChunkedDecoder` turns the bytes of a chunked message body, cut anywhere, into the
payload bytes, and says when the body ended (the last, zero-size chunk and its trailer
section). It is as lenient as Python's http.client (what urllib3 relies on): the size is
``int(text, 16)`` of what comes before an optional ``;extension``, the two bytes after each
chunk's data are skipped unread, and trailer fields are skipped up to the empty line.

Pure and stdlib-only: no I/O. Works with ``find`` and slices, never per byte in Python.
"""

from __future__ import annotations

__all__ = ["ChunkedDecoder", "ChunkedError"]

MAX_LINE = 4096  # a chunk-size line (with extensions) or a trailer line longer than this is broken

# ChunkedDecoder._left below 1: where in the framing the decoder is.
_SIZE_LINE, _AFTER_DATA, _TRAILER = 0, -1, -2


class ChunkedError(ValueError):
    """The bytes are not a chunked body (an unreadable size, an overlong line)."""


class ChunkedDecoder:
    """``feed(bytes) -> payload bytes`` per read; :attr:`done` once the body is complete.

    :attr:`extra` counts bytes that came after the end of the body (a connection that
    carried them must not be reused). Broken framing sets :attr:`error` (a
    :class:`ChunkedError`); the payload before it is still returned, everything after it
    is ignored. One instance per body; all state on the instance.
    """

    __slots__ = ("done", "extra", "error", "_left", "_tail")

    def __init__(self) -> None:
        self.done = False
        self.extra = 0
        self.error: ChunkedError | None = None
        self._left = _SIZE_LINE  # > 0: payload bytes left in this chunk
        self._tail = b""  # an incomplete framing line (or the first byte of a CRLF)

    def feed(self, data: bytes) -> bytes:
        if self.done:
            self.extra += len(data)
            return b""
        if self.error is not None:
            return b""
        out: list[bytes] = []
        try:
            self._feed(data, out)
        except ChunkedError as exc:
            self.error = exc
        return out[0] if len(out) == 1 else b"".join(out)

    def _feed(self, data: bytes, out: list[bytes]) -> None:
        if self._tail:
            data = self._tail + data
            self._tail = b""
        pos, end = 0, len(data)
        while pos < end:
            left = self._left
            if left > 0:  # inside a chunk's data
                stop = pos + left
                if stop >= end:
                    out.append(data[pos:] if pos else data)
                    self._left = (stop - end) or _AFTER_DATA
                    break
                out.append(data[pos:stop])
                pos = stop
                self._left = _AFTER_DATA
            elif left == _AFTER_DATA:  # the CRLF that closes a chunk's data
                if end - pos < 2:
                    self._tail = data[pos:]
                    break
                pos += 2
                self._left = _SIZE_LINE
            else:
                eol = data.find(b"\n", pos)
                if eol < 0:
                    if end - pos > MAX_LINE:
                        raise ChunkedError("chunk framing line too long")
                    self._tail = data[pos:]
                    break
                line = data[pos:eol]
                pos = eol + 1
                if left == _SIZE_LINE:
                    self._left = _chunk_size(line) or _TRAILER
                elif not line.strip(b"\r"):  # the empty line that ends the trailer section
                    self.done = True
                    self.extra = end - pos
                    break


def _chunk_size(line: bytes) -> int:
    if len(line) > MAX_LINE:
        raise ChunkedError("chunk size line too long")
    try:
        size = int(line.split(b";", 1)[0], 16)
    except ValueError:
        size = -1
    if size < 0:
        raise ChunkedError(f"invalid chunk size line {line[:40]!r}")
    return size
