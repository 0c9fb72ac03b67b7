"""UpstreamClient against a scripted loopback server: an open stream keeps no copy of the
request body it sent (Claude Code bodies reach megabytes in long sessions, and one worker
carries a thousand streams); a kept-alive connection is checked by the session's connection
probe before it is reused, and the gevent workers' probe answers without yielding."""

from __future__ import annotations

import os
import runpy
import socket
import subprocess
import sys
import tracemalloc

import pytest
import requests

from app.upstream.client import UpstreamClient, build_session, readable_now
from app.upstream.deployments import Target
from app.upstream.events import EventSource
from tests.unit.test_upstream_events import CHUNKED, ScriptedServer, chunk, event
from tests.unit.test_upstream_events import tls  # noqa: F401 - a fixture, used by name


class FixedTokens:
    """Stands in for a TokenProvider: one bearer token, never refused."""

    def token(self) -> str:
        return "tok-1"

    def invalidate(self, token: str) -> None:
        pass


def test_an_open_stream_does_not_keep_the_body_it_sent():
    streams = 8
    server = ScriptedServer(*[[CHUNKED, chunk(event(n)), 10.0] for n in range(streams)])
    target = Target(url=server.url, model="m", subaccount="sub", resource_group="default",
                    tokens=FixedTokens())
    with requests.Session() as session:
        client = UpstreamClient(session, connect_timeout=2, read_timeout=5,
                                stream_headers_timeout=5)
        tracemalloc.start()
        try:
            before = tracemalloc.get_traced_memory()[0]
            sources = []
            for _ in range(streams):
                resp = client.post(target, "", b'{"pad": "%s"}' % (b"x" * 1_000_000), stream=True)
                assert resp.status_code == 200
                sources.append(EventSource(resp))
            held = tracemalloc.get_traced_memory()[0] - before
        finally:
            tracemalloc.stop()
        assert all(s.next(2.0)[0].data.startswith('{"type"') for s in sources)  # still open
        for s in sources:
            s.abort()
    server.close()
    assert held < streams * 1_000_000 / 4, f"{held:,} bytes held by {streams} open streams"


JSON_OK = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}"
ROOT = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_kept_alive_connection_is_probed_before_reuse_and_replaced_when_readable(scheme,
                                                                                  request):
    context, ca = request.getfixturevalue("tls") if scheme == "https" else (None, None)
    server = ScriptedServer([JSON_OK], [JSON_OK], [JSON_OK], tls=context)
    target = Target(url=server.url, model="m", subaccount="sub", resource_group="default",
                    tokens=FixedTokens())
    probed, dropped = [], []

    def probe(sock) -> bool:
        probed.append(sock.fileno())
        return bool(dropped)

    with build_session(4, ca, probe=probe) as session:
        client = UpstreamClient(session, connect_timeout=2, read_timeout=5,
                                stream_headers_timeout=5)
        assert client.post(target, "", b"{}", stream=False).json() == {}
        assert (probed, server.accepted) == ([], 1)  # a new connection needs no probe
        assert client.post(target, "", b"{}", stream=False).json() == {}
        assert len(probed) == 1 and server.accepted == 1  # probed, found idle, reused
        dropped.append(True)  # as if SAP AI Core had closed it meanwhile
        assert client.post(target, "", b"{}", stream=False).json() == {}
        assert len(probed) == 2 and server.accepted == 2  # replaced by a new one
    server.close()


def test_connections_through_a_proxy_are_probed_too():
    probed = []
    with build_session(4, probe=lambda sock: probed.append(sock) or True) as session:
        manager = session.get_adapter("https://x").proxy_manager_for("http://127.0.0.1:3128")
        for url in ("https://api.ai.example.com/v2", "http://api.ai.example.com/v2"):
            conn = manager.connection_from_url(url)._new_conn()
            conn.sock, peer = socket.socketpair()
            with conn.sock, peer:
                assert conn.is_connected is False  # the probe said "readable": not reused
    assert len(probed) == 2


def test_the_default_probe_tells_an_idle_connection_from_a_closed_one():
    ours, theirs = socket.socketpair()
    with ours:
        assert readable_now(ours) is False
        theirs.close()
        assert readable_now(ours) is True


UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import gevent, runpy, socket, sys
probe = runpy.run_path(sys.argv[1])["UnpatchedPollProbe"]()
ours, theirs = socket.socketpair()
ran = []
gevent.spawn(ran.append, "another greenlet")  # ready to run at the next switch
assert probe(ours) is False, "an idle connection is reusable"
assert ran == [], "the probe switched to the hub"
theirs.sendall(b"x")
assert probe(ours) is True, "unasked bytes: not reusable"
theirs.close()
assert probe(ours) is True and ran == []
gevent.sleep(0)
assert ran == ["another greenlet"]
print("ok")
"""


def run_ok(script: str, *args: str) -> None:
    """Run ``script`` in a fresh interpreter (gevent's patching cannot be undone here); it
    prints ``ok`` when every assertion in it held."""
    done = subprocess.run([sys.executable, "-c", script, *args],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and done.stdout.strip() == "ok", done.stderr[-2000:]


def test_the_gevent_workers_probe_does_not_let_other_greenlets_run_first():
    """urllib3's own check is a zero-timeout ``select.poll``, which gevent turns into a
    switch to its hub: under load every ready greenlet ran before the request was sent."""
    run_ok(UNDER_GEVENT, os.path.join(ROOT, "gunicorn.conf.py"))


REUSE_UNDER_GEVENT = """
from gevent import monkey; monkey.patch_all()
import runpy, sys, greenlet, gevent
from gevent.pywsgi import WSGIServer
sys.path.insert(0, sys.argv[2])
from app.upstream.client import UpstreamClient, build_session, readable_now
from app.upstream.deployments import Target

def app(environ, start_response):
    environ["wsgi.input"].read()
    start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", "2")])
    return [b"{}"]

server = WSGIServer(("127.0.0.1", 0), app, log=None); server.start()

class Tokens:
    def token(self): return "t"
    def invalidate(self, token): pass

target = Target(url="http://127.0.0.1:%d/x" % server.server_port, model="m", subaccount="s",
                resource_group="default", tokens=Tokens())

def switches_in_reuse_check(probe):
    # hub switches made from inside urllib3's check of a kept-alive connection
    client = UpstreamClient(build_session(4, probe=probe), connect_timeout=2, read_timeout=5,
                            stream_headers_timeout=5)
    client.post(target, "", b"{}", stream=False).content  # opens the connection
    hub, found = gevent.get_hub(), []
    def trace(event, args):
        if event == "switch" and args[1] is hub:
            frame = args[0].gr_frame
            while frame is not None:
                if frame.f_code.co_name == "_get_conn":
                    found.append(frame.f_code.co_filename)
                frame = frame.f_back
    greenlet.settrace(trace)
    try:
        client.post(target, "", b"{}", stream=False).content  # reuses it
    finally:
        greenlet.settrace(None)
    return len(found)

probe = runpy.run_path(sys.argv[1])["UnpatchedPollProbe"]()
assert switches_in_reuse_check(readable_now) > 0, "control: urllib3's own check yields here"
assert switches_in_reuse_check(probe) == 0, "the gevent workers' check yielded"
print("ok")
"""


def test_a_reused_connection_is_checked_without_a_hub_switch_under_gevent():
    """The whole path: urllib3's pool really asks the probe, and with the gevent workers'
    probe no greenlet switch happens inside that check (with urllib3's own it does: the
    control in the script, so the test also fails if the switch stops being seen)."""
    run_ok(REUSE_UNDER_GEVENT, os.path.join(ROOT, "gunicorn.conf.py"), ROOT)


def test_the_gevent_workers_build_their_runtime_with_the_waiter_and_the_probe(tmp_path,
                                                                            monkeypatch):
    """gunicorn's post_worker_init hands GeventReadWaiter (which the failover loop passes to
    every upstream stream) and UnpatchedPollProbe (which the session's pools ask) to the
    worker's runtime."""
    from app import config, runtime
    from tests.http_fakes import make_settings

    hooks = runpy.run_path(os.path.join(ROOT, "gunicorn.conf.py"))
    monkeypatch.setattr(config, "_worker_settings", make_settings(tmp_path))
    runtime.install(None)
    try:
        hooks["post_worker_init"](None)
        assert runtime.current().read_waiter is hooks["GeventReadWaiter"]
        assert isinstance(runtime.current().connection_probe, hooks["UnpatchedPollProbe"])
    finally:
        runtime.install(None)
