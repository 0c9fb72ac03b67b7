"""Relaying an upstream SSE stream to the client: decode -> translate -> write.

A reader (a greenlet under gevent, a thread elsewhere) pulls upstream chunks into
a queue; the response generator waits on that queue with the ping interval as
timeout, so a silent upstream (long thinking, prefill of a big prompt) still
produces ``event: ping`` bytes that keep idle watchdogs and proxies happy. Each
upstream chunk becomes at most one client write, sent as soon as it arrives.
When the client goes away, gunicorn closes the generator and the ``finally``
closes the upstream response at once. After the first byte, failures are
reported in-band by the translator, never as a silent cut.
"""

from __future__ import annotations

import logging
import queue
import socket
import threading
from typing import Callable, Iterator, Protocol

import requests
from flask import Response

from app.log import RequestRecord
from app.wire.sse import SSEDecoder

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
ANTHROPIC_PING = b'event: ping\ndata: {"type": "ping"}\n\n'

_END = object()
# After message_stop, how long to wait for the upstream to end before cutting it.
END_GRACE_SECONDS = 1.0


class StreamTranslator(Protocol):
    usage: dict
    failed: bool
    done: bool

    def feed(self, data: str) -> bytes: ...
    def finish(self) -> bytes: ...
    def error_event(self, error_type: str, message: str) -> bytes: ...


def sse_response(body: Iterator[bytes], headers: dict) -> Response:
    resp = Response(body, status=200, mimetype="text/event-stream")
    resp.headers.update(SSE_HEADERS)
    resp.headers.update(headers)
    return resp


def _pump(upstream: requests.Response, inbox: queue.Queue) -> None:
    """Reader: move upstream chunks into ``inbox``, then an end marker or the error.

    The reader owns the response: it closes it (a fully read one goes back to the
    keep-alive pool). The writer only ever shuts the socket down to wake it.
    """
    try:
        for chunk in upstream.iter_content(chunk_size=None):
            if chunk:
                inbox.put(chunk)
        inbox.put(_END)
    except Exception as exc:  # noqa: BLE001 - any transport failure ends the stream in-band
        inbox.put(exc)
    finally:
        upstream.close()


def _abort(upstream: requests.Response) -> None:
    """Cut the upstream connection now (client gone, or a failure we already reported).

    Closing the response from here would race the reader, which is inside a read;
    shutting the socket down makes that read return at once and the reader close it.
    """
    sock = _socket_of(upstream)
    if sock is None:
        return
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def _socket_of(upstream: requests.Response) -> socket.socket | None:
    """The socket under a streamed response (urllib3 keeps it on the connection, or,
    when the upstream said ``Connection: close``, only inside http.client's reader)."""
    raw = upstream.raw
    sock = getattr(getattr(raw, "_connection", None), "sock", None)
    if sock is None:
        buffered = getattr(getattr(raw, "_fp", None), "fp", None)
        sock = getattr(getattr(buffered, "raw", None), "_sock", None)
    return sock if isinstance(sock, socket.socket) else None


def relay(upstream: requests.Response, translator: StreamTranslator, record: RequestRecord, *,
          ping_interval: float, ping: bytes = ANTHROPIC_PING,
          on_end: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Yield client bytes for ``upstream``'s SSE events until done, failure or disconnect."""
    inbox: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(upstream, inbox), daemon=True,
                              name="upstream-reader")
    reader.start()
    decoder = SSEDecoder()
    upstream_ended = False
    try:
        while True:
            try:
                item = inbox.get(timeout=END_GRACE_SECONDS if translator.done else ping_interval)
            except queue.Empty:
                if translator.done:
                    return
                yield ping
                continue
            if item is _END:
                upstream_ended = True
                break
            if isinstance(item, Exception):
                upstream_ended = True
                if translator.done:
                    return
                log.warning("upstream stream of %s broke: %s", record.deployment,
                            type(item).__name__)
                record.error_type = "upstream_broke"
                yield translator.error_event(
                    "api_error", "Upstream stream from SAP AI Core broke off")
                return
            if translator.done or translator.failed:
                continue  # drain until the upstream ends; nothing more goes to the client
            out = [translator.feed(event.data) for event in decoder.feed(item)]
            if any(out):
                record.mark_first_event()
                yield b"".join(out)
            if translator.failed:
                return
        tail = b"".join(translator.feed(event.data) for event in decoder.flush())
        tail += translator.finish()
        if tail:
            yield tail
    finally:
        if not upstream_ended:
            _abort(upstream)
        record.usage = translator.usage
        if translator.failed and record.error_type == "-":
            record.error_type = "stream_error"
        if on_end is not None:
            on_end()
        record.finish(200)
