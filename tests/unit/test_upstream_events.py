"""EventSource against a scripted loopback HTTP server: events as they arrive, timeouts that
keep the stream intact, the idle limit, broken bodies, abort, and connection reuse.

Every test runs twice: waiting with the socket's own timeout, and with a read waiter (a
``select`` one here; under gevent, the gevent workers' ``GeventReadWaiter`` from
``gunicorn.conf.py``)."""

from __future__ import annotations

import gzip
import os
import runpy
import select
import shutil
import socket
import ssl
import subprocess
import sys
import threading
import time

import pytest
import requests

from app.upstream.events import END, TIMEOUT, EventSource

CHUNKED = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nTransfer-Encoding: chunked\r\n\r\n"


def event(n: int) -> bytes:
    return b'data: {"type":"content_block_delta","n":%d}\n\n' % n


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


LAST = b"0\r\n\r\n"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


class SelectWaiter:
    """A ReadWaiter without gevent: ``select`` on the socket."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock

    def wait(self, timeout: float) -> bool:
        return bool(select.select([self.sock], [], [], timeout)[0])

    def close(self) -> None:
        pass


def read_waiter_under_test():
    if os.environ.get("EVENTS_TEST_GEVENT_WAITER"):
        return runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))["GeventReadWaiter"]
    return SelectWaiter


READ_WAITER = None  # set per test by the ``waiting`` fixture


@pytest.fixture(autouse=True, params=["by_socket_timeout", "by_read_waiter"])
def waiting(request, monkeypatch):
    monkeypatch.setattr(sys.modules[__name__], "READ_WAITER",
                        read_waiter_under_test() if request.param == "by_read_waiter" else None)


class ScriptedServer:
    """Answers the k-th request with ``scripts[k]``: bytes are written, floats are pauses, and
    ``"close"`` closes the connection. Connections are kept alive between requests."""

    def __init__(self, *scripts, tls: ssl.SSLContext | None = None) -> None:
        self.scripts = list(scripts)
        self.accepted = 0
        self.client_closed = threading.Event()
        self.tls = tls
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.url = "%s://127.0.0.1:%d/stream" % ("https" if tls else "http",
                                                 self.listener.getsockname()[1])
        threading.Thread(target=self._serve, daemon=True).start()

    def _serve(self) -> None:
        while True:
            try:
                conn, _ = self.listener.accept()
            except OSError:
                return
            self.accepted += 1
            conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                conn = self.tls.wrap_socket(conn, server_side=True)
            threading.Thread(target=self._connection, args=(conn,), daemon=True).start()

    def _connection(self, conn: socket.socket) -> None:
        buf = b""
        with conn:
            while self.scripts:
                while b"\r\n\r\n" not in buf:
                    data = conn.recv(65536)
                    if not data:
                        self.client_closed.set()
                        return
                    buf += data
                head, _, buf = buf.partition(b"\r\n\r\n")
                length = 0
                for line in head.split(b"\r\n"):
                    if line.lower().startswith(b"content-length:"):
                        length = int(line.split(b":")[1])
                while len(buf) < length:
                    buf += conn.recv(65536)
                buf = buf[length:]
                for step in self.scripts.pop(0):
                    if step == "close":
                        return
                    if not self._play(conn, step):
                        self.client_closed.set()
                        return
            if not self._play(conn, 5.0):
                self.client_closed.set()

    @staticmethod
    def _play(conn: socket.socket, step) -> bool:
        """Write bytes, or pause while watching for the client going away; False if it did."""
        try:
            if not isinstance(step, float):
                conn.sendall(step)
                return True
            conn.settimeout(step)
            try:
                return conn.recv(1) != b""
            except socket.timeout:
                return True
            finally:
                conn.settimeout(None)
        except OSError:
            return False

    def close(self) -> None:
        self.listener.close()


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def open_source(session, server, read_timeout=5.0) -> EventSource:
    resp = session.post(server.url, data=b"{}", stream=True, timeout=(2, read_timeout))
    assert resp.status_code == 200
    return EventSource(resp, read_waiter=READ_WAITER)


def drain(source, timeout=2.0):
    """(data of every event, number of TIMEOUTs) until END."""
    got, timeouts = [], 0
    while True:
        batch = source.next(timeout)
        if batch is END:
            return got, timeouts
        if batch is TIMEOUT:
            timeouts += 1
            continue
        got += [e.data for e in batch]


def payloads(*ns):
    return [event(n).decode()[6:-2] for n in ns]


def test_plain_bodies_are_read_from_the_socket_and_others_through_requests(session):
    server = ScriptedServer([CHUNKED, chunk(event(1)), LAST])
    assert open_source(session, server)._body is not None
    zipped = gzip.compress(event(1))
    server = ScriptedServer([b"HTTP/1.1 200 OK\r\nContent-Encoding: gzip\r\nContent-Length: %d"
                             b"\r\n\r\n" % len(zipped), zipped])
    source = open_source(session, server)
    assert source._body is None
    assert drain(source) == (payloads(1), 0) and source.error is None


def test_events_come_as_they_are_written(session):
    server = ScriptedServer([CHUNKED, chunk(event(1)), 0.6, chunk(event(2)), LAST])
    source = open_source(session, server)
    started = time.monotonic()
    assert [e.data for e in source.first_events(5)] == payloads(1)
    assert time.monotonic() - started < 0.4
    assert drain(source) == (payloads(2), 0)
    assert source.error is None


def test_first_body_bytes_sent_with_the_headers_are_not_waited_for(session):
    server = ScriptedServer([CHUNKED + chunk(event(1)) + chunk(event(2)), 3.0, LAST])
    source = open_source(session, server)
    started = time.monotonic()
    assert [e.data for e in source.next(5)] == payloads(1, 2)
    assert time.monotonic() - started < 1.0


def test_a_timeout_mid_chunk_loses_nothing(session):
    whole = chunk(event(1) + event(2))
    server = ScriptedServer([CHUNKED, whole[:9], 0.5, whole[9:40], 0.5, whole[40:], LAST])
    source = open_source(session, server)
    got, timeouts = drain(source, timeout=0.2)
    assert got == payloads(1, 2) and timeouts >= 2 and source.error is None


def test_content_length_and_close_delimited_bodies(session):
    body = event(1) + event(2)
    server = ScriptedServer(
        [b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n" % len(body), body[:10], 0.2, body[10:]],
        [CHUNKED, chunk(event(3)), LAST])
    assert drain(open_source(session, server)) == (payloads(1, 2), 0)
    assert drain(open_source(session, server)) == (payloads(3), 0)
    assert server.accepted == 1  # the Content-Length body left the connection reusable
    server = ScriptedServer([b"HTTP/1.1 200 OK\r\nConnection: close\r\n\r\n", event(4), 0.2,
                             event(5), "close"])
    source = open_source(session, server)
    assert drain(source) == (payloads(4, 5), 0) and source.error is None


def test_a_complete_stream_gives_its_connection_back_to_the_pool(session):
    scripts = [[CHUNKED, chunk(event(n)), LAST] for n in range(3)]
    server = ScriptedServer(*scripts)
    for n in range(3):
        assert drain(open_source(session, server)) == (payloads(n), 0)
    assert server.accepted == 1


def test_bytes_after_the_body_close_the_connection(session):
    server = ScriptedServer([CHUNKED, chunk(event(1)) + LAST + b"garbage"],
                            [CHUNKED, chunk(event(2)), LAST])
    assert drain(open_source(session, server)) == (payloads(1), 0)
    assert drain(open_source(session, server)) == (payloads(2), 0)
    assert server.accepted == 2


def test_silence_longer_than_the_read_timeout_ends_with_an_error(session):
    server = ScriptedServer([CHUNKED, chunk(event(1)), 3.0, LAST])
    source = open_source(session, server, read_timeout=0.5)
    started = time.monotonic()
    got, timeouts = drain(source, timeout=0.2)
    assert got == payloads(1) and timeouts == 2  # pings were due at 0.2 s and 0.4 s
    assert isinstance(source.error, requests.ConnectionError)
    assert 0.45 < time.monotonic() - started < 1.5


def test_time_spent_away_from_the_socket_is_not_silence(session):
    server = ScriptedServer([CHUNKED, chunk(event(1)), 0.1, chunk(event(2)), 0.1, LAST])
    source = open_source(session, server, read_timeout=0.3)
    assert [e.data for e in source.next(1)] == payloads(1)
    time.sleep(0.8)  # e.g. a slow client: the upstream's bytes wait in the socket
    assert drain(source) == (payloads(2), 0) and source.error is None


@pytest.mark.parametrize("cut", [
    [CHUNKED, chunk(event(1)), chunk(event(2))[:6], "close"],  # inside a chunk
    [CHUNKED, chunk(event(1)), "close"],  # between chunks, no last chunk
    [b"HTTP/1.1 200 OK\r\nContent-Length: 500\r\n\r\n", event(1), "close"],
    [CHUNKED, chunk(event(1)), b"zz\r\n", 1.0],  # not chunked framing
])
def test_a_broken_body_delivers_what_came_then_ends_with_an_error(session, cut):
    server = ScriptedServer(cut)
    source = open_source(session, server)
    got, _ = drain(source)
    assert got == payloads(1)
    assert source.error is not None


def test_an_event_without_its_blank_line_is_flushed_at_the_end(session):
    server = ScriptedServer([CHUNKED, chunk(event(1) + b'data: {"last":1}\n'), LAST])
    assert drain(open_source(session, server)) == (payloads(1) + ['{"last":1}'], 0)


def test_abort_closes_the_upstream_at_once(session):
    server = ScriptedServer([CHUNKED, chunk(event(1)), 10.0, LAST])
    source = open_source(session, server)
    assert source.next(2) != END
    source.abort()
    assert server.client_closed.wait(2)
    assert source.next(1) is END or source.ended


@pytest.fixture
def tls(tmp_path):
    """A server context with a fresh self-signed certificate, and the client's CA file."""
    if shutil.which("openssl") is None:
        pytest.skip("needs the openssl command to make a certificate")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
                    "-keyout", str(key), "-out", str(cert), "-subj", "/CN=127.0.0.1",
                    "-addext", "subjectAltName=IP:127.0.0.1"], check=True, capture_output=True)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    return context, str(cert)


def test_over_tls_the_same_guarantees_hold(session, tls):
    context, ca = tls
    session.trust_env = False
    session.verify = ca
    server = ScriptedServer([CHUNKED + chunk(event(1)), 0.4, chunk(event(2)), LAST],
                            [CHUNKED, chunk(event(3)), 2.0, LAST],
                            [CHUNKED, chunk(event(4)), 10.0, LAST], tls=context)
    source = open_source(session, server)
    assert source._body is not None
    started = time.monotonic()
    assert [e.data for e in source.next(5)] == payloads(1)  # sent with the headers
    assert time.monotonic() - started < 0.3
    got, timeouts = drain(source, timeout=0.1)
    assert got == payloads(2) and timeouts >= 2 and source.error is None
    source = open_source(session, server, read_timeout=0.5)
    got, timeouts = drain(source, timeout=0.2)
    assert got == payloads(3) and timeouts == 2  # pings due at 0.2 s and 0.4 s, cut at 0.5 s
    assert isinstance(source.error, requests.ConnectionError)
    assert server.accepted == 1  # the first stream left its connection reusable
    source = open_source(session, server)
    assert source.next(2) not in (END, TIMEOUT)
    source.abort()
    assert server.client_closed.wait(2)


def test_a_trickle_that_completes_no_event_does_not_extend_the_first_event_wait(session):
    partial = chunk(b'data: {"type":"mess')
    server = ScriptedServer([CHUNKED, partial, 0.3, partial, 0.3, partial, 0.3, partial, 5.0, LAST])
    source = open_source(session, server)
    started = time.monotonic()
    assert source.first_events(0.5) is TIMEOUT
    assert time.monotonic() - started < 0.9
    source.abort()


def test_under_gevent_as_in_the_server(tmp_path):
    """The same tests with gevent's monkey-patching, as gunicorn's gevent workers run them:
    the body reader then waits on gevent sockets (plain and TLS), with their own timeout or
    with the gevent workers' read waiter (each run of this test takes its own half)."""
    mode = "by_socket_timeout" if READ_WAITER is None else "by_read_waiter"
    code = ("from gevent import monkey; monkey.patch_all()\n"
            "import sys, pytest\n"
            "sys.exit(pytest.main(['-q', '-p', 'no:cacheprovider', '-k', "
            f"'not under_gevent and {mode}', {__file__!r}]))\n")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=240, cwd=str(tmp_path),
                          env={**os.environ, "EVENTS_TEST_GEVENT_WAITER": "1"})
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
