"""UpstreamClient against a scripted loopback server: an open stream keeps no copy of the
request body it sent (Claude Code bodies reach megabytes in long sessions, and one worker
carries a thousand streams)."""

from __future__ import annotations

import tracemalloc

import requests

from app.upstream.client import UpstreamClient
from app.upstream.deployments import Target
from app.upstream.events import EventSource
from tests.unit.test_upstream_events import CHUNKED, ScriptedServer, chunk, event


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
