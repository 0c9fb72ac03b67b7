"""A small, cheap HTTP/1.1 keep-alive client for the load generator (raw sockets).

It is used under gevent (the load generators monkey-patch ``socket`` first), one greenlet per
connection. Per request it measures, from just before the request is written:

* ``ttfb``: the first response byte (status line);
* ``tfce``: the first content event, i.e. the first received bytes that contain ``marker``
  (``content_block_delta`` for Anthropic streams; the gateway's ``event:`` line and Bedrock's
  ``data: {"type":"content_block_delta"`` both contain it);
* ``total``: the end of the response (``Content-Length`` read, last chunk of a chunked body,
  or connection close).

It parses only what it needs (status, ``Content-Length``, ``Transfer-Encoding: chunked``,
``Connection: close``) so the load generator costs little CPU on a 2-core machine. A kept-alive
connection the server closed while idle is retried once on a new connection (not an error).
"""

from __future__ import annotations

import socket
import time
from typing import Optional

try:  # one timer per request instead of one per socket operation (cheaper under gevent)
    from gevent import Timeout as _Timeout
except ImportError:  # pragma: no cover - the load generators always run under gevent
    _Timeout = None

perf = time.perf_counter
RECV = 65536


class Result:
    __slots__ = ("ok", "status", "error", "ttfb", "tfce", "total", "nbytes", "pings",
                 "max_gap", "events", "sample")

    def __init__(self) -> None:
        self.ok = False
        self.status = 0
        self.error: Optional[str] = None
        self.ttfb: Optional[float] = None
        self.tfce: Optional[float] = None
        self.total: Optional[float] = None
        self.nbytes = 0
        self.pings = 0
        self.max_gap = 0.0
        self.events = 0
        self.sample = b""  # start of a failed answer, for the report


class _Stale(Exception):
    """The server closed an idle kept-alive connection before answering."""


def build_request(method: str, path: str, host: str, headers: list[tuple[str, str]],
                  body: bytes = b"") -> bytes:
    lines = [f"{method} {path} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


class Conn:
    """One keep-alive connection to ``host:port``."""

    def __init__(self, host: str, port: int, timeout: float = 30.0) -> None:
        self.addr = (host, port)
        self.timeout = timeout
        self.sock: Optional[socket.socket] = None
        self.reconnects = 0

    def connect(self) -> None:
        sock = socket.create_connection(self.addr, timeout=self.timeout)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        if _Timeout is not None:
            sock.settimeout(None)  # the whole request is bounded by one gevent.Timeout
        self.sock = sock

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def request(self, payload: bytes, marker: Optional[bytes] = None, expect: Optional[bytes] = None,
                fail: Optional[bytes] = None, track_gaps: bool = False, count_events: bool = False) -> Result:
        """Send ``payload`` (a whole request) and read the whole answer.

        ``ok`` needs status 200, ``expect`` (if given) within the last 1 KB of the body and
        ``fail`` (if given) nowhere in the body.
        """
        res = Result()
        timer = _Timeout.start_new(self.timeout) if _Timeout is not None else None
        try:
            return self._request(res, payload, marker, expect, fail, track_gaps, count_events)
        except BaseException as exc:
            if timer is None or exc is not timer:
                raise
            self.close()
            res.error = "timeout"
            return res
        finally:
            if timer is not None:
                timer.close()

    def _request(self, res: Result, payload: bytes, marker: Optional[bytes], expect: Optional[bytes],
                 fail: Optional[bytes], track_gaps: bool, count_events: bool) -> Result:
        for attempt in (0, 1):
            reused = self.sock is not None
            t0 = perf()
            try:
                if not reused:
                    self.connect()
                self.sock.sendall(payload)
                body = self._read(res, t0, marker, track_gaps)
            except _Stale:
                self.close()
                if reused and attempt == 0:
                    self.reconnects += 1
                    continue
                res.error = "closed before answering"
                return res
            except socket.timeout:
                self.close()
                res.error = "timeout"
                return res
            except (OSError, ValueError, IndexError) as exc:
                self.close()
                res.error = type(exc).__name__
                return res
            break
        res.nbytes = len(body)
        if res.status != 200:
            res.error = f"HTTP {res.status}"
            res.sample = body[:300]
        elif expect is not None and expect not in body[-1024:]:
            res.error = "incomplete answer"
            res.sample = body[-300:]
        elif fail is not None and fail in body:
            res.error = "error event"
            i = body.find(fail)
            res.sample = body[i:i + 300]
        else:
            res.ok = True
        if count_events:
            res.pings = body.count(b"event: ping")
            res.events = body.count(b"\n\n")
        return res

    def _read(self, res: Result, t0: float, marker: Optional[bytes], track_gaps: bool) -> bytes:
        recv = self.sock.recv
        buf = b""
        while True:
            data = recv(RECV)
            if not data:
                if not buf:
                    raise _Stale()
                raise ConnectionError("closed inside the headers")
            now = perf()
            if res.ttfb is None:
                res.ttfb = now - t0
            buf += data
            end = buf.find(b"\r\n\r\n")
            if end >= 0:
                break
        head = buf[:end].lower()
        rest = buf[end + 4:]
        res.status = int(head[9:12])
        close = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
        last = now
        tail = b""
        if marker is not None and marker in rest:
            res.tfce = now - t0
            marker = None

        if b"\r\ntransfer-encoding: chunked" in head:
            parts = []
            pending, pos = rest, 0
            while True:
                done = False
                while True:
                    nl = pending.find(b"\r\n", pos)
                    if nl < 0:
                        break
                    size = int(pending[pos:nl].split(b";", 1)[0], 16)
                    if size == 0:
                        trailer_end = pending.find(b"\r\n\r\n", nl)
                        if trailer_end >= 0:
                            done = True
                        break
                    if len(pending) < nl + 4 + size:
                        break
                    parts.append(pending[nl + 2:nl + 2 + size])
                    pos = nl + 4 + size
                if done:
                    break
                data = recv(RECV)
                if not data:
                    raise ConnectionError("closed inside a chunked body")
                now = perf()
                if track_gaps:
                    res.max_gap = max(res.max_gap, now - last)
                    last = now
                if marker is not None:
                    if marker in tail + data[:len(marker) * 2] or marker in data:
                        res.tfce = now - t0
                        marker = None
                    else:
                        tail = data[-len(marker):]
                pending = pending[pos:] + data
                pos = 0
            body = b"".join(parts)
        else:
            length = -1
            i = head.find(b"\r\ncontent-length:")
            if i >= 0:
                j = head.find(b"\r\n", i + 2)
                length = int(head[i + 17:j if j >= 0 else len(head)])
            while length < 0 or len(rest) < length:
                data = recv(RECV)
                if not data:
                    if length < 0:
                        close = True
                        break
                    raise ConnectionError("closed inside the body")
                now = perf()
                if track_gaps:
                    res.max_gap = max(res.max_gap, now - last)
                    last = now
                if marker is not None:
                    if marker in tail + data[:len(marker) * 2] or marker in data:
                        res.tfce = now - t0
                        marker = None
                    else:
                        tail = data[-len(marker):]
                rest += data
            body = rest if length < 0 else rest[:length]
        res.total = perf() - t0
        if close:
            self.close()
        return body
