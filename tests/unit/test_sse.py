"""SSEDecoder and the SSE encoders: WHATWG framing, chunk boundaries anywhere."""

import random
from pathlib import Path

import pytest

from app.wire.sse import SSEDecoder, SSEEvent, encode_comment, encode_data, encode_event

FIXTURES = Path(__file__).resolve().parent.parent / "fixtures" / "sse"
GOLDEN = sorted(FIXTURES.glob("*.in.sse"))


def decode(*chunks):
    dec = SSEDecoder()
    out = []
    for chunk in chunks:
        out.extend(dec.feed(chunk))
    out.extend(dec.flush())
    return out


def offsets(raw):
    """Every byte offset for small inputs; for big ones a stride plus every offset near a
    line terminator (where the interesting boundaries are)."""
    if len(raw) <= 4096:
        return range(len(raw) + 1)
    picked = set(range(0, len(raw) + 1, 97))
    for i, b in enumerate(raw):
        if b in (0x0A, 0x0D):
            picked.update(range(max(0, i - 2), min(len(raw), i + 3) + 1))
    picked.add(len(raw))
    return sorted(picked)


def test_golden_inputs_exist():
    assert len(GOLDEN) >= 10


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_split_at_every_offset_gives_same_events(path):
    raw = path.read_bytes()
    whole = decode(raw)
    assert whole, "fixture decodes to no events"
    for k in offsets(raw):
        assert decode(raw[:k], raw[k:]) == whole, k


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_one_byte_chunks_give_same_events(path):
    raw = path.read_bytes()
    assert decode(*[raw[i : i + 1] for i in range(len(raw))]) == decode(raw)


@pytest.mark.parametrize("path", GOLDEN, ids=lambda p: p.name)
def test_random_multi_splits(path):
    raw = path.read_bytes()
    whole = decode(raw)
    rng = random.Random(path.name)
    for _ in range(50):
        cuts = sorted(rng.sample(range(len(raw) + 1), k=min(6, len(raw) + 1)))
        chunks = [raw[a:b] for a, b in zip([0] + cuts, cuts + [len(raw)])]
        assert decode(*chunks) == whole


def test_basic_event():
    assert decode(b"data: hello\n\n") == [SSEEvent(None, "hello")]


def test_named_event_and_fields():
    raw = b"event: message_start\nid: 7\nretry: 1500\ndata: {}\n\n"
    assert decode(raw) == [SSEEvent("message_start", "{}", "7", 1500)]


def test_id_persists_and_retry_does_not():
    events = decode(b"id: a\nretry: 10\ndata: 1\n\ndata: 2\n\n")
    assert events == [SSEEvent(None, "1", "a", 10), SSEEvent(None, "2", "a", None)]


def test_invalid_retry_and_id_with_nul_ignored():
    assert decode(b"retry: 1s\nid: x\x00y\ndata: z\n\n") == [SSEEvent(None, "z")]


@pytest.mark.parametrize("sep", [b"\n", b"\r\n", b"\r"])
def test_line_endings(sep):
    raw = sep.join([b"event: a", b"data: 1", b"", b"data: 2", b"data: 3", b"", b""])
    assert decode(raw) == [SSEEvent("a", "1"), SSEEvent(None, "2\n3")]


def test_crlf_split_between_cr_and_lf():
    dec = SSEDecoder()
    assert dec.feed(b"data: x\r") == []
    assert dec.feed(b"\n\r") == [SSEEvent(None, "x")]
    assert dec.feed(b"\n") == []  # pairs with the previous \r: no extra blank line
    assert dec.feed(b"data: y\r\n\r\n") == [SSEEvent(None, "y")]
    assert dec.flush() == []


def test_cr_cr_lf_is_two_line_ends():
    assert decode(b"data: x\r", b"\r\ndata: y\n\n") == [SSEEvent(None, "x"), SSEEvent(None, "y")]


def test_lone_cr_then_lf_in_next_read_not_doubled():
    # "data: a\r" + "\ndata: b\n\n": the \n belongs to the \r, so a and b are one event.
    assert decode(b"data: a\r", b"\ndata: b\n\n") == [SSEEvent(None, "a\nb")]


def test_multibyte_character_split_in_every_position():
    text = "caf\u00e9 \u2014 \u65e5\u672c \U0001f600"
    raw = ("data: " + text + "\n\n").encode("utf-8")
    for k in range(len(raw) + 1):
        events = decode(raw[:k], raw[k:])
        assert events == [SSEEvent(None, text)], k
        assert "\ufffd" not in events[0].data


def test_invalid_utf8_is_replaced_not_raised():
    assert decode(b"data: a\xffb\n\n") == [SSEEvent(None, "a\ufffdb")]


def test_comments_ignored():
    raw = b": keepalive\n:\ndata: 1\n: in the middle\ndata: 2\n\n: trailing\n\n"
    assert decode(raw) == [SSEEvent(None, "1\n2")]


def test_data_without_space_and_with_two_spaces():
    assert decode(b"data:x\n\ndata:  y\n\ndata\n\n") == [
        SSEEvent(None, "x"),
        SSEEvent(None, " y"),
        SSEEvent(None, ""),
    ]


def test_unknown_fields_ignored():
    assert decode(b"foo: bar\ndata: 1\nbaz\n\n") == [SSEEvent(None, "1")]


def test_event_without_data_is_not_dispatched():
    assert decode(b"event: ping\n\ndata: x\n\n") == [SSEEvent(None, "x")]


def test_empty_event_name_is_none():
    assert decode(b"event:\ndata: x\n\n") == [SSEEvent(None, "x")]


def test_event_name_resets_after_dispatch():
    assert decode(b"event: a\ndata: 1\n\ndata: 2\n\n") == [SSEEvent("a", "1"), SSEEvent(None, "2")]


def test_trailing_event_without_blank_line_needs_flush():
    dec = SSEDecoder()
    assert dec.feed(b'data: {"type":"message_stop"}\n') == []
    assert dec.flush() == [SSEEvent(None, '{"type":"message_stop"}')]


def test_trailing_line_without_terminator():
    assert decode(b"data: 1\n\ndata: 2") == [SSEEvent(None, "1"), SSEEvent(None, "2")]


def test_flush_on_empty_and_twice():
    dec = SSEDecoder()
    assert dec.flush() == []
    assert dec.feed(b"data: a") == []
    assert dec.flush() == [SSEEvent(None, "a")]
    assert dec.flush() == []


def test_bom_stripped_once():
    assert decode(b"\xef\xbb\xbfdata: 1\n\n") == [SSEEvent(None, "1")]
    assert decode(b"\xef\xbb", b"\xbfdata: 1\n\n") == [SSEEvent(None, "1")]


def test_accepts_bytearray_and_memoryview():
    dec = SSEDecoder()
    assert dec.feed(bytearray(b"data: a\n")) == []
    assert dec.feed(memoryview(b"\ndata: b\n\n")) == [SSEEvent(None, "a"), SSEEvent(None, "b")]


def test_many_events_in_one_chunk():
    raw = b"".join(b'data: {"n":%d}\n\n' % i for i in range(1000))
    events = decode(raw)
    assert len(events) == 1000
    assert events[-1] == SSEEvent(None, '{"n":999}')


def test_encode_event():
    assert encode_event("ping", '{"type": "ping"}') == b'event: ping\ndata: {"type": "ping"}\n\n'
    assert encode_event("x", b"\xc3\xa9") == b"event: x\ndata: \xc3\xa9\n\n"
    assert encode_event("x", "\u00e9") == b"event: x\ndata: \xc3\xa9\n\n"


def test_encode_event_multiline_round_trips():
    data = '{\n  "a": 1\r\n}\n'
    raw = encode_event("m", data)
    assert raw == b'event: m\ndata: {\ndata:   "a": 1\ndata: }\ndata: \n\n'
    assert decode(raw) == [SSEEvent("m", '{\n  "a": 1\n}\n')]


def test_encode_event_rejects_multiline_name():
    with pytest.raises(ValueError):
        encode_event("a\nb", "x")


def test_encode_data():
    assert encode_data('{"id":1}') == b'data: {"id":1}\n\n'
    assert encode_data(b"[DONE]") == b"data: [DONE]\n\n"
    assert decode(encode_data("a\nb")) == [SSEEvent(None, "a\nb")]


def test_encode_comment_is_ignored_by_decoder():
    assert encode_comment() == b":\n\n"
    assert encode_comment("keepalive") == b": keepalive\n\n"
    raw = encode_comment("two\nlines") + encode_data("x")
    assert decode(raw) == [SSEEvent(None, "x")]
