"""ChunkedDecoder: the payload of a chunked body, cut anywhere, and where the body ends."""

import http.client
import io

import pytest

from app.wire.chunked import MAX_LINE, ChunkedDecoder, ChunkedError

EVENTS = [b'data: {"type":"message_start"}\n\n', b'data: {"type":"ping"}\n\n',
          "data: {\"text\":\"h\u00e9llo \u2603\"}\n\n".encode("utf-8"), b"x" * 300]
PAYLOAD = b"".join(EVENTS)


def chunked(parts, ext=b"", trailers=b""):
    body = b"".join(b"%x%s\r\n%s\r\n" % (len(p), ext, p) for p in parts)
    return body + b"0\r\n" + trailers + b"\r\n"


BODIES = {
    "plain": chunked(EVENTS),
    "upper-hex-and-extensions": b"".join(b"%X;name=value\r\n%s\r\n" % (len(p), p) for p in EVENTS)
                                + b"0;last\r\n\r\n",
    "trailers": chunked(EVENTS, trailers=b"X-Checksum: abc\r\nX-Other: 1\r\n"),
    "bare-lf-lines": b"".join(b"%x\n%s\r\n" % (len(p), p) for p in EVENTS) + b"0\n\n",
    "one-big-chunk": chunked([PAYLOAD]),
}


def decode(pieces):
    dec = ChunkedDecoder()
    out = b"".join(dec.feed(p) for p in pieces)
    return out, dec


@pytest.mark.parametrize("name", sorted(BODIES))
def test_every_split_gives_the_payload_and_the_end(name):
    body = BODIES[name]
    for cut in range(len(body) + 1):
        out, dec = decode([body[:cut], body[cut:]])
        assert out == PAYLOAD, cut
        assert dec.done and dec.extra == 0, cut


@pytest.mark.parametrize("name", sorted(BODIES))
def test_byte_by_byte_and_the_end_is_seen_only_at_the_last_byte(name):
    body = BODIES[name]
    dec = ChunkedDecoder()
    out = b""
    for i in range(len(body)):
        assert not dec.done, i
        out += dec.feed(body[i:i + 1])
    assert out == PAYLOAD and dec.done


@pytest.mark.parametrize("name", sorted(BODIES))
def test_same_payload_as_http_client(name):
    body = BODIES[name]

    class Sock:
        def makefile(self, mode):
            return io.BytesIO(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + body)

    resp = http.client.HTTPResponse(Sock())
    resp.begin()
    assert resp.read() == PAYLOAD == decode([body])[0]


def test_bytes_after_the_body_are_counted_not_returned():
    out, dec = decode([chunked(EVENTS) + b"HTTP/1.1 200 OK\r\n", b"more"])
    assert out == PAYLOAD and dec.done and dec.extra == len(b"HTTP/1.1 200 OK\r\n") + 4


def test_an_unfinished_body_is_not_done():
    body = chunked(EVENTS)
    for cut in (len(body) - 1, len(body) - 2, len(body) - 5, 3):
        assert not decode([body[:cut]])[1].done


@pytest.mark.parametrize("line", [b"zz\r\n", b"-5\r\n", b"\r\n", b"12 34\r\n"])
def test_an_unreadable_size_line_is_an_error_after_the_payload_before_it(line):
    dec = ChunkedDecoder()
    assert dec.feed(chunked(EVENTS[:2])[:-5] + line + b"data\r\n") == b"".join(EVENTS[:2])
    assert isinstance(dec.error, ChunkedError) and not dec.done
    assert dec.feed(chunked(EVENTS)) == b""  # nothing after the error is trusted


def test_an_endless_framing_line_is_an_error():
    dec = ChunkedDecoder()
    dec.feed(b"1" * MAX_LINE)  # still within the limit: waits for its end
    assert dec.error is None
    dec.feed(b"1")
    assert isinstance(dec.error, ChunkedError)
