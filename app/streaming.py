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
    """Reader: move upstream chunks into ``inbox``, then an end marker or the error."""
    try:
        for chunk in upstream.iter_content(chunk_size=None):
            if chunk:
                inbox.put(chunk)
        inbox.put(_END)
    except Exception as exc:  # noqa: BLE001 - any transport failure ends the stream in-band
        inbox.put(exc)


def relay(upstream: requests.Response, translator: StreamTranslator, record: RequestRecord, *,
          ping_interval: float, ping: bytes = ANTHROPIC_PING,
          on_end: Callable[[], None] | None = None) -> Iterator[bytes]:
    """Yield client bytes for ``upstream``'s SSE events until done, failure or disconnect."""
    inbox: queue.Queue = queue.Queue()
    reader = threading.Thread(target=_pump, args=(upstream, inbox), daemon=True,
                              name="upstream-reader")
    reader.start()
    decoder = SSEDecoder()
    try:
        while True:
            try:
                item = inbox.get(timeout=ping_interval)
            except queue.Empty:
                yield ping
                continue
            if item is _END:
                break
            if isinstance(item, Exception):
                log.warning("upstream stream of %s broke: %s", record.deployment,
                            type(item).__name__)
                record.error_type = "upstream_broke"
                yield translator.error_event(
                    "api_error", "Upstream stream from SAP AI Core broke off")
                return
            out = [translator.feed(event.data) for event in decoder.feed(item)]
            if any(out):
                record.mark_first_event()
                yield b"".join(out)
            if translator.done or translator.failed:
                return
        tail = b"".join(translator.feed(event.data) for event in decoder.flush())
        tail += translator.finish()
        if tail:
            yield tail
    finally:
        upstream.close()
        record.usage = translator.usage
        if translator.failed and record.error_type == "-":
            record.error_type = "stream_error"
        if on_end is not None:
            on_end()
        record.finish(200)
