"""The relay against a scripted loopback upstream and a real client socket: a stream that
flows costs no client watcher, a silence starts one, and a client hanging up during that
silence cuts the upstream at once; the record is filled in but left for the response's
close to finish."""

from __future__ import annotations

import socket
import time

import pytest
import requests

from app import streaming
from app.log import RequestRecord
from app.streaming import relay
from app.translate.bedrock_stream import BedrockToAnthropicStream
from tests.http_fakes import bedrock_stream
from tests.unit.test_upstream_events import CHUNKED, LAST, ScriptedServer, chunk, open_source

EVENTS = [("data: " + line[6:] + "\n\n").encode()
          for line in bedrock_stream(("a", "b", "c")).split("\n\n") if line]


class CountingSocket(socket.socket):
    """A real socket that counts ``dup()``: the client watch's first step."""

    dups = 0

    def dup(self):
        self.dups += 1
        return super().dup()


@pytest.fixture
def client_pair():
    ours, theirs = socket.socketpair()
    counted = CountingSocket(fileno=ours.detach())
    yield counted, theirs
    counted.close()
    theirs.close()


@pytest.fixture
def session():
    with requests.Session() as s:
        yield s


def record() -> RequestRecord:
    return RequestRecord("req_test", "POST", "/v1/messages")


def test_a_stream_that_never_pauses_starts_no_watch(session, client_pair):
    client, _ = client_pair
    server = ScriptedServer([CHUNKED, *[chunk(e) for e in EVENTS], LAST])
    rec = record()
    out = b"".join(relay(open_source(session, server), BedrockToAnthropicStream(model="m"), rec,
                         ping_interval=5.0, client=client))
    assert out.endswith(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
    assert client.dups == 0
    assert rec.usage["output_tokens"] == 5 and rec.error_type == "-"
    assert not rec.finished  # the response's close finishes it, after the last byte


def test_a_silence_starts_the_watch_and_a_hang_up_then_cuts_the_upstream(session, client_pair):
    client, theirs = client_pair
    server = ScriptedServer([CHUNKED, chunk(EVENTS[0]), chunk(EVENTS[1]), 3.0,
                             *[chunk(e) for e in EVENTS[2:]], LAST])
    rec = record()
    stream = relay(open_source(session, server), BedrockToAnthropicStream(model="m"), rec,
                   ping_interval=5.0, client=client)
    first = next(stream)
    assert b"message_start" in first
    time.sleep(streaming.WATCH_AFTER_SECONDS + 0.3)  # inside the upstream's silence
    theirs.close()  # the client hangs up
    hung_up = time.monotonic()
    rest = list(stream)
    assert time.monotonic() - hung_up < 1.0  # not after the 3 s silence
    assert client.dups == 1
    assert rec.error_type == "client_gone"
    assert b"message_stop" not in b"".join(rest)
    assert server.client_closed.wait(2.0)  # the upstream connection was cut


def test_pings_keep_their_interval_when_the_watch_starts(session, client_pair):
    client, _ = client_pair
    server = ScriptedServer([CHUNKED, chunk(EVENTS[0]), 1.3, *[chunk(e) for e in EVENTS[1:]],
                             LAST])
    started = time.monotonic()
    pings = []
    for piece in relay(open_source(session, server), BedrockToAnthropicStream(model="m"),
                       record(), ping_interval=0.5, client=client):
        if b"event: ping" in piece:
            pings.append(time.monotonic() - started)
    assert len(pings) == 2
    assert 0.4 < pings[0] < 0.75 and 0.9 < pings[1] < 1.25
    assert client.dups == 1
