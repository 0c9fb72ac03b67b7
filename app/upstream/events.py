"""Reading an upstream SSE response without blocking the response writer.

:class:`EventSource` starts a reader (a greenlet under gevent, a thread elsewhere)
that moves upstream chunks into a queue; the consumer takes decoded events (SSE, or
whatever framing the given decoder reads)
with a timeout, so it can send keepalive pings while the upstream is silent, or
give up on a stream that stalls before its first event. The reader owns the
response and closes it (a fully read one goes back to the keep-alive pool);
:meth:`EventSource.abort` only shuts the socket down, which wakes the reader at
once: closing the response from the consumer's side would race the reader's read.
"""

from __future__ import annotations

import queue
import socket
import threading
from typing import Protocol

import requests

from app.wire.sse import SSEDecoder, SSEEvent

class EventDecoder(Protocol):
    """Upstream bytes -> events: the SSE decoder, or one that also reads other framings
    (Gemini's JSON-array stream)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...
    def flush(self) -> list[SSEEvent]: ...


END = object()
TIMEOUT = object()


class EventSource:
    def __init__(self, upstream: requests.Response, decoder: EventDecoder | None = None) -> None:
        self.upstream = upstream
        self._inbox: queue.Queue = queue.Queue()
        self._decoder = decoder if decoder is not None else SSEDecoder()
        self.ended = False
        self.error: Exception | None = None
        self._reader = threading.Thread(target=self._pump, daemon=True, name="upstream-reader")
        self._reader.start()

    def _pump(self) -> None:
        try:
            for chunk in self.upstream.iter_content(chunk_size=None):
                if chunk:
                    self._inbox.put(chunk)
            self._inbox.put(END)
        except Exception as exc:  # noqa: BLE001 - any transport failure ends the stream
            self._inbox.put(exc)
        finally:
            self.upstream.close()

    def next(self, timeout: float) -> list[SSEEvent] | object:
        """Events decoded from the next upstream chunk, or ``TIMEOUT``, or ``END``.

        At the end, events still buffered in the decoder come first; a transport
        failure ends the source too and is kept in :attr:`error`.
        """
        if self.ended:
            return END
        try:
            item = self._inbox.get(timeout=timeout)
        except queue.Empty:
            return TIMEOUT
        if isinstance(item, (bytes, bytearray)):
            # Under load several chunks may be waiting: take them together, so the
            # client gets one write instead of one per upstream chunk.
            while not self._inbox.empty():
                more = self._inbox.queue[0]
                if not isinstance(more, (bytes, bytearray)):
                    break
                item += self._inbox.get_nowait()
            return self._decoder.feed(item)
        self.ended = True
        if isinstance(item, Exception):
            self.error = item
        tail = self._decoder.flush()
        return tail if tail else END

    def first_events(self, timeout: float) -> list[SSEEvent] | object:
        """Wait up to ``timeout`` for the first complete event(s); TIMEOUT or END otherwise."""
        while True:
            got = self.next(timeout)
            if got is TIMEOUT or got is END or got:
                return got

    def abort(self) -> None:
        """Cut the upstream connection now (client gone, failover, or a reported failure)."""
        if self.ended:
            return
        sock = _socket_of(self.upstream)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def _socket_of(upstream: requests.Response) -> socket.socket | None:
    """The socket under a streamed response: urllib3 keeps it on the connection, or,
    when the upstream said ``Connection: close``, only inside http.client's reader."""
    raw = upstream.raw
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        buffered = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(buffered, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
