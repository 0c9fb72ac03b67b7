"""Reading an upstream event stream: decoded events as they arrive, with a timeout.

The consumer (the response generator) takes decoded events (SSE, or whatever framing
the given decoder reads, e.g. Gemini's JSON array) with a timeout, so it can send
keepalive pings while the upstream is silent, or give up on a stream that stalls
before its first event.

A streamed response on a real socket (every call to SAP AI Core) is read straight
from that socket by the consumer itself (:class:`_SocketBody`): one ``recv`` per
wait, with the HTTP/1.1 body framing (chunked via :mod:`app.wire.chunked`,
``Content-Length``, or until close) undone here. Under gevent an upstream event then
costs one wake-up of the waiting greenlet and one timer; the former reader greenlet
and queue cost a second switch and a second timer per event, plus urllib3's
``read_chunked`` generators and three buffered reads per chunk. A silence longer than
the socket's own timeout (``stream_idle_timeout``, counted over the waits only, so
time spent writing to a slow client is not silence) ends the stream as a transport
failure, as urllib3's read timeout did. A complete body hands its connection back to
the keep-alive pool the way urllib3 does (``close()`` of http.client's response, then
``release_conn()``); an aborted, broken or overlong one closes it.

How a wait is done can be given per worker (``read_waiter``, a
:data:`ReadWaiterFactory`): gunicorn's gevent workers pass one that waits on gevent's
event loop with one watcher and one timer kept for the whole stream
(``gunicorn.conf.py``), so an event costs no failed ``recv``, no exception and no timeout
object; ``bench.floor`` measured 20-40 µs less CPU per event that way than a gevent
socket's own timeout. Without one (tests, a development server) the socket's timeout
does the waiting.

Anything else (a compressed body, a response without a socket such as a test
double) is read by a reader (a greenlet under gevent, a thread elsewhere) that moves
``iter_content`` chunks into a queue. The reader owns that response and closes it;
:meth:`EventSource.abort` only shuts the socket down, which wakes the reader at once:
closing the response from the consumer's side would race the reader's read.
"""

from __future__ import annotations

import io
import queue
import socket
import threading
import time
from typing import Callable, Protocol

import requests

from app.wire.chunked import ChunkedDecoder
from app.wire.sse import SSEDecoder, SSEEvent


class EventDecoder(Protocol):
    """Upstream bytes -> events: the SSE decoder, or one that also reads other framings
    (Gemini's JSON-array stream)."""

    def feed(self, chunk: bytes) -> list[SSEEvent]: ...
    def flush(self) -> list[SSEEvent]: ...


class ReadWaiter(Protocol):
    """Waits until one socket is readable (or at its end), for one stream."""

    def wait(self, timeout: float) -> bool:
        """True once the socket is readable, False after ``timeout`` seconds without."""

    def close(self) -> None:
        """The stream is over: release what the waiter holds (the socket stays open)."""


ReadWaiterFactory = Callable[[socket.socket], ReadWaiter]

END = object()
TIMEOUT = object()

_READ_SIZE = 65536
_FOREVER = float(2 ** 31)  # seconds: a wait with neither a ping nor an idle limit


class EventSource:
    """The events of one streamed upstream response (see the module docstring)."""

    def __init__(self, upstream: requests.Response, decoder: EventDecoder | None = None, *,
                 idle_timeout: float | None = None,
                 read_waiter: ReadWaiterFactory | None = None) -> None:
        """``idle_timeout``: the longest silence of the body (default: the socket's timeout,
        which the caller set for waiting on the response headers); ``read_waiter``: how to
        wait for the socket (default: its own timeout)."""
        self.upstream = upstream
        if idle_timeout is not None:
            sock = _socket_of(upstream)
            if sock is not None:
                sock.settimeout(idle_timeout)
        self._decoder = decoder if decoder is not None else SSEDecoder()
        self.ended = False
        self.error: Exception | None = None
        self._body = _SocketBody.attach(upstream, read_waiter)
        if self._body is None:
            self._inbox: queue.Queue = queue.Queue()
            self._reader = threading.Thread(target=self._pump, daemon=True,
                                            name="upstream-reader")
            self._reader.start()

    def next(self, timeout: float) -> list[SSEEvent] | object:
        """Events decoded from the next upstream read, or ``TIMEOUT``, or ``END``.

        At the end, events still buffered in the decoder come first; a transport
        failure ends the source too and is kept in :attr:`error`.
        """
        if self.ended:
            return END
        body = self._body
        if body is None:
            return self._next_queued(timeout)
        try:
            data = body.read(timeout)
        except Exception as exc:  # noqa: BLE001 - any transport failure ends the stream
            body.discard()
            return self._end(exc)
        if data is None:
            return TIMEOUT
        events = self._decoder.feed(data) if data else []
        if body.done:
            body.finish()
            tail = self._end(None)
            return events + tail if tail is not END else (events or END)
        return events

    def first_events(self, timeout: float) -> list[SSEEvent] | object:
        """Wait up to ``timeout`` in all for the first complete event(s); TIMEOUT or END
        otherwise. Bytes that complete no event (framing, a trickle of a partial event) do
        not restart the wait."""
        deadline = time.monotonic() + timeout
        while True:
            got = self.next(timeout)
            if got is TIMEOUT or got is END or got:
                return got
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                return TIMEOUT

    def cut(self) -> None:
        """Shut the upstream connection down from outside the consumer (another greenlet):
        a wait in :meth:`next` wakes at once and ends the stream; :meth:`abort` cleans up."""
        sock = self._body.sock if self._body is not None else _socket_of(self.upstream)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def abort(self) -> None:
        """Cut the upstream connection now (client gone, failover, or a reported failure)."""
        if self.ended:
            return
        if self._body is not None:
            self._body.discard()
            return
        sock = _socket_of(self.upstream)
        if sock is not None:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def _end(self, error: Exception | None) -> list[SSEEvent] | object:
        self.ended = True
        self.error = error
        tail = self._decoder.flush()
        return tail if tail else END

    # -- the reader for responses that cannot be read from their socket ------------------

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

    def _next_queued(self, timeout: float) -> list[SSEEvent] | object:
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
        return self._end(item if isinstance(item, Exception) else None)


class _SocketBody:
    """The body of a streamed response, read from its socket by the caller.

    :meth:`read` waits up to ``timeout`` for the next bytes on the socket and returns
    the body bytes they carried (``b""`` when they were only framing), or ``None`` on
    timeout; :attr:`done` is set once the body is complete. The response's own socket
    timeout is the longest silence allowed (the stream idle timeout); only time spent
    waiting for the upstream counts, not time the caller spent writing to a slow client.
    """

    __slots__ = ("upstream", "sock", "idle", "done", "_chunks", "_left", "_reusable",
                 "_silent", "_timeout", "_pending", "_waiter", "_tls_pending")

    @classmethod
    def attach(cls, upstream: requests.Response,
               read_waiter: ReadWaiterFactory | None = None) -> "_SocketBody | None":
        """Take over the body of ``upstream`` if it is a plain HTTP/1.x body on a socket
        that nothing has read yet; ``None`` otherwise (the caller falls back to
        ``iter_content``)."""
        raw = getattr(upstream, "raw", None)
        original = getattr(raw, "_original_response", None)  # http.client's response
        fp = getattr(original, "fp", None)
        if type(fp) is not io.BufferedReader or not isinstance(fp.raw, socket.SocketIO):
            return None
        sock = getattr(fp.raw, "_sock", None)
        if not isinstance(sock, socket.socket) or getattr(raw, "_fp", None) is not original:
            return None
        if raw.headers.get("content-encoding", "identity").lower() not in ("identity", ""):
            return None  # compressed: urllib3 decodes it
        if getattr(upstream, "_content_consumed", False):
            return None
        if original.chunked:
            if original.chunk_left is not None:
                return None  # something already read from the body
            return cls(upstream, sock, fp, ChunkedDecoder(), None, read_waiter)
        if original.length is not None:
            return cls(upstream, sock, fp, None, original.length, read_waiter)
        if original.will_close:  # the body ends when the connection does
            return cls(upstream, sock, fp, None, None, read_waiter)
        return None

    def __init__(self, upstream: requests.Response, sock: socket.socket, fp: io.BufferedReader,
                 chunks: ChunkedDecoder | None, length: int | None,
                 read_waiter: ReadWaiterFactory | None = None) -> None:
        self.upstream = upstream
        self.sock = sock
        self.idle: float | None = sock.gettimeout()
        self._timeout = self.idle
        # With a waiter the socket keeps the idle limit as its own timeout: it then only
        # bounds a TLS record that is still arriving after the socket became readable.
        self._waiter = read_waiter(sock) if read_waiter is not None else None
        self._tls_pending = getattr(sock, "pending", None)  # decrypted bytes held by TLS
        self._chunks = chunks
        self._left = length  # Content-Length: bytes still to come
        self.done = length == 0
        self._reusable = True  # False after bytes beyond the body
        self._silent = 0.0  # seconds waited without a byte
        # http.client read the headers through a buffered reader that may hold the
        # first body bytes already: take them without waiting for the socket.
        self._pending = self._buffered(fp)

    def _buffered(self, fp: io.BufferedReader) -> bytes:
        self.sock.settimeout(0.0)
        try:
            return fp.read1(_READ_SIZE) or b""
        except (OSError, ValueError):  # nothing yet (would block), or a failure the next read sees
            return b""
        finally:
            self.sock.settimeout(self._timeout)

    def read(self, timeout: float | None) -> bytes | None:
        if self.done:
            return b""
        if self._chunks is not None and self._chunks.error is not None:
            raise requests.exceptions.ChunkedEncodingError(
                f"Connection broken: {self._chunks.error}")  # after the payload before it
        data = self._pending
        if data:
            self._pending = b""
        else:
            data = self._recv(timeout)
            if data is None:
                return None
            if not data:
                return self._eof()
        chunks = self._chunks
        if chunks is not None:
            data = chunks.feed(data)
            if chunks.done:
                self.done = True
                self._reusable = not chunks.extra
            return data
        if self._left is not None:
            return self._count(data)
        return data

    def _recv(self, timeout: float | None) -> bytes | None:
        wait = timeout
        idle_left = None
        if self.idle is not None:
            idle_left = self.idle - self._silent
            if wait is None or idle_left <= wait:
                wait = idle_left
        if wait is not None and wait < 0.001:
            wait = 0.001  # zero would make the socket non-blocking
        waiter = self._waiter
        if waiter is None:
            if wait != self._timeout:
                self.sock.settimeout(wait)
                self._timeout = wait
            try:
                data = self.sock.recv(_READ_SIZE)
            except socket.timeout:
                return self._silence(wait, idle_left)
        else:
            if not (self._tls_pending and self._tls_pending()) and \
                    not waiter.wait(wait if wait is not None else _FOREVER):
                return self._silence(wait, idle_left)
            try:
                data = self.sock.recv(_READ_SIZE)  # readable: only a TLS record may lag
            except socket.timeout:  # ... for the socket's own timeout, the idle limit
                raise self._idle_error() from None
        self._silent = 0.0
        return data

    def _silence(self, wait: float | None, idle_left: float | None) -> None:
        """A wait of ``wait`` seconds without a byte: a ping is due, or the idle limit."""
        self._silent += wait or 0.0
        if idle_left is not None and wait is not None and wait >= idle_left:
            raise self._idle_error()
        return None

    def _idle_error(self) -> requests.ConnectionError:
        return requests.ConnectionError(f"Read timed out: no upstream data for {self.idle:g} s")

    def _eof(self) -> bytes:
        if self._chunks is not None or self._left is not None:
            raise requests.exceptions.ChunkedEncodingError(
                "Connection broken: the upstream closed before the end of the body")
        self.done = True  # a body delimited by the end of the connection
        return b""

    def _count(self, data: bytes) -> bytes:
        left = self._left - len(data)
        if left > 0:
            self._left = left
            return data
        self._left = 0
        self.done = True
        if left < 0:  # more than announced
            self._reusable = False
            return data[:left]
        return data

    def finish(self) -> None:
        """The body is complete: the connection goes back to the pool, as urllib3 does it."""
        if not self._reusable:
            self.discard()
            return
        self._close_waiter()
        raw = self.upstream.raw
        try:
            self.sock.settimeout(self.idle)
            raw._original_response.close()
            raw.release_conn()
        finally:
            self.upstream.close()

    def discard(self) -> None:
        """Close the connection for good (failure, abort, or bytes beyond the body)."""
        self._close_waiter()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.upstream.close()

    def _close_waiter(self) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None:
            waiter.close()


def _socket_of(upstream: requests.Response) -> socket.socket | None:
    """The socket under a streamed response: urllib3 keeps it on the connection, or,
    when the upstream said ``Connection: close``, only inside http.client's reader."""
    raw = upstream.raw
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        buffered = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(buffered, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None
