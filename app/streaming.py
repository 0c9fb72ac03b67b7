"""Relaying an upstream SSE stream to the client: decode -> translate -> write.

The upstream is read by an :class:`~app.upstream.events.EventSource`; the response
generator waits on it with the ping interval as timeout, so a silent upstream (long
thinking, prefill of a big prompt) still produces ``event: ping`` bytes that keep
idle watchdogs and proxies happy. Each upstream chunk becomes at most one client
write, sent as soon as it arrives. When the client goes away, gunicorn closes the
generator at the next write and the ``finally`` cuts the upstream connection at once;
while the upstream is silent (a model thinking for minutes) there is no write to fail,
so once a silence lasts ``WATCH_AFTER_SECONDS`` a :class:`ClientWatch` waits on the
client's socket and cuts the upstream the moment the client hangs up. A stream that never
pauses that long (most of them) costs no watcher. After the first byte, failures are
reported in-band by the translator, never as a silent cut.

The relay does not finish the request's record: the response's close does (see
``app.routes._finish_record``), after the server wrote the last byte, so the access
line, the usage line and the metrics are not on the client's path.
"""

from __future__ import annotations

import logging
import socket
import threading
from typing import Callable, Iterable, Iterator, Protocol

from flask import Response

from app.log import RequestRecord
from app.upstream.events import END, TIMEOUT, EventSource
from app.wire.sse import SSEEvent

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ANTHROPIC_PING = b'event: ping\ndata: {"type": "ping"}\n\n'

# After message_stop, how long to wait for the upstream to end before cutting it.
END_GRACE_SECONDS = 1.0
# A silence this long starts watching the client's socket for a hang-up.
WATCH_AFTER_SECONDS = 0.2


class StreamTranslator(Protocol):
    usage: dict
    failed: bool
    done: bool

    def feed(self, data: str) -> bytes: ...
    def finish(self) -> bytes: ...
    def error_event(self, error_type: str, message: str) -> bytes: ...


class UpstreamAdapter(Protocol):
    """Another upstream dialect (Azure chunks, Gemini responses) -> Bedrock-style events."""

    def feed(self, data: str) -> list[str]: ...
    def finish(self) -> list[str]: ...


class AdaptedStream:
    """A client translator fed through an :class:`UpstreamAdapter`: the client side
    sees the same Bedrock-style Anthropic events whatever family answered."""

    __slots__ = ("adapter", "inner")

    def __init__(self, adapter: UpstreamAdapter, inner: StreamTranslator) -> None:
        self.adapter = adapter
        self.inner = inner

    @property
    def usage(self) -> dict:
        return self.inner.usage

    @property
    def failed(self) -> bool:
        return self.inner.failed

    @property
    def done(self) -> bool:
        return self.inner.done

    def feed(self, data: str) -> bytes:
        return b"".join([self.inner.feed(event) for event in self.adapter.feed(data)])

    def finish(self) -> bytes:
        tail = b"".join([self.inner.feed(event) for event in self.adapter.finish()])
        if self.inner.done or self.inner.failed:
            return tail
        return tail + self.inner.finish()

    def error_event(self, error_type: str, message: str) -> bytes:
        return self.inner.error_event(error_type, message)


class ClientWatch:
    """Calls ``on_gone`` when the client closes its connection while a stream is relayed.

    A reader of its own (a greenlet in gunicorn's gevent workers) waits on a duplicate of
    the client's socket for one byte with ``MSG_PEEK``: nothing is consumed, so the
    connection stays usable for keep-alive. End of file (or a reset) means the client is
    gone; any bytes (a pipelined request) end the watch quietly. :meth:`stop` closes the
    duplicate, which wakes the reader; the client's own socket is untouched.
    """

    __slots__ = ("_sock", "_on_gone", "_stopped")

    def __init__(self, client: socket.socket, on_gone: Callable[[], None]) -> None:
        self._sock = client.dup()
        self._on_gone = on_gone
        self._stopped = False
        threading.Thread(target=self._watch, daemon=True, name="client-watch").start()

    def _watch(self) -> None:
        try:
            data = self._sock.recv(1, socket.MSG_PEEK)
        except OSError:  # reset by the client, or our own stop()
            data = b""
        if not data and not self._stopped:
            self._on_gone()

    def stop(self) -> None:
        self._stopped = True
        try:
            self._sock.close()
        except OSError:
            pass


def sse_response(body: Iterator[bytes], headers: dict) -> Response:
    resp = Response(body, status=200, mimetype="text/event-stream")
    resp.headers.update(SSE_HEADERS)
    resp.headers.update(headers)
    return resp


def relay(source: EventSource, translator: StreamTranslator, record: RequestRecord, *,
          ping_interval: float, pending: Iterable[SSEEvent] = (),
          ping: bytes = ANTHROPIC_PING, client: socket.socket | None = None) -> Iterator[bytes]:
    """Yield client bytes for the upstream's SSE events until done, failure or disconnect.

    ``pending`` are events already read before the response was committed; ``client`` is
    the client's socket (``gunicorn.socket``), watched for a hang-up while nothing is written.
    The caller finishes ``record`` once the response is closed; the relay fills it in.
    """
    watch: ClientWatch | None = None

    def gone() -> None:
        record.error_type = "client_gone"
        source.cut()

    def next_batch(timeout: float) -> object:
        nonlocal watch
        if watch is None and client is not None and timeout > WATCH_AFTER_SECONDS:
            got = source.next(WATCH_AFTER_SECONDS)
            if got is not TIMEOUT:
                return got
            watch = ClientWatch(client, gone)  # a silence: nothing written can fail now
            timeout -= WATCH_AFTER_SECONDS
        return source.next(timeout)

    try:
        batch: object = list(pending)
        while True:
            if batch is TIMEOUT:
                if translator.done:
                    return  # message_stop relayed; the upstream just did not hang up
                yield ping
            elif batch is END:
                if record.error_type == "client_gone":
                    return  # the watch cut the upstream: nobody is left to tell
                if source.error is not None and not translator.done:
                    log.warning("upstream stream of %s broke: %s", record.deployment,
                                type(source.error).__name__)
                    record.error_type = "upstream_broke"
                    yield translator.error_event(
                        "api_error", "Upstream stream from SAP AI Core broke off")
                    return
                tail = translator.finish()
                if tail:
                    yield tail
                return
            elif not (translator.done or translator.failed):
                out = b"".join([translator.feed(event.data) for event in batch])
                if out:
                    record.mark_first_event()
                    yield out
                if translator.failed:
                    return
            # after message_stop, drain briefly so a fully read connection can be reused
            batch = source.next(END_GRACE_SECONDS) if translator.done else \
                next_batch(ping_interval)
    except GeneratorExit:  # gunicorn closed the generator: a write to the client failed
        if record.error_type == "-":
            record.error_type = "client_gone"
        raise
    finally:
        if watch is not None:
            watch.stop()
        source.abort()
        record.usage = translator.usage
        if translator.failed and record.error_type == "-":
            record.error_type = "stream_error"
