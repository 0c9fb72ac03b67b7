"""app.wire.jsoncodec: orjson's speed where it gives the standard library's exact values,
the standard library itself (values and error wording) everywhere else."""

from __future__ import annotations

import json
import math

import pytest

from app.wire import jsoncodec
from app.wire.jsoncodec import dumps, loads
from tests.http_fakes import fixture_requests

EXACT_CASES = [
    b'{"n": 18446744073709551616}',  # 2**64: orjson alone would give a float
    b'{"n": -9223372036854775809}',  # below -2**63, with only 19 digits
    b'{"n": -9999999999999999999}',
    b'[123456789012345678901234567890, 1]',
    '{"text": "id 12345678901234567890123"}',  # a long digit run inside a string: still exact
    b'{"ok": 18446744073709551615, "neg": -9223372036854775808}',  # the 64-bit edges
    b'{"a": 1, "a": 2}',
    b'[1E2, 0.1, 1e-7, -0, 0.30000000000000004]',
    b'{"s": "\\ud83d"}',  # a lone surrogate escape: orjson refuses, the stdlib keeps it
    b'[NaN, Infinity, -Infinity]',
    b'[1e400]',
    b'\xef\xbb\xbf{"bom": true}',  # bytes with a UTF-8 BOM: orjson refuses, the stdlib reads them
    '{"emoji": "\U0001f600", "accents": "\u00e9"}',
    b'  {"spaced" : [ ] }  ',
    bytearray(b'{"from": "a bytearray"}'),
]


@pytest.mark.parametrize("text", EXACT_CASES)
def test_values_are_the_standard_librarys(text):
    got, want = loads(text), json.loads(text)
    assert repr(got) == repr(want)  # repr: 1 and 1.0 differ, so do nan and its type
    assert [type(v) for v in _leaves(got)] == [type(v) for v in _leaves(want)]


@pytest.mark.parametrize("text", [b'{"a": 1,}', b"", b"[1, 2", b"\xff\xfe{}", b'{"a": 01}',
                                  "[" * 100_000, '\ufeff{"bom": true}'])
def test_errors_are_the_standard_librarys(text):
    with pytest.raises((ValueError, RecursionError)) as want:
        json.loads(text)
    with pytest.raises(want.type) as got:
        loads(text)
    assert str(got.value) == str(want.value)


def test_big_integers_survive_a_round_trip():
    body = b'{"input": {"factorial_25": 15511210043330985984000000}}'
    assert dumps(loads(body)) == b'{"input":{"factorial_25":15511210043330985984000000}}'


def test_real_claude_code_bodies_decode_as_with_the_standard_library():
    for request in fixture_requests("no_toolsearch.jsonl") + fixture_requests("tools.jsonl"):
        raw = json.dumps(request["body"], ensure_ascii=False).encode()
        assert loads(raw) == json.loads(raw)


def test_orjson_is_taken_when_it_is_exact(monkeypatch):
    """The fast path is really used for ordinary text (and skipped for a long digit run)."""
    calls = []
    real = jsoncodec.orjson.loads
    monkeypatch.setattr(jsoncodec.orjson, "loads", lambda t: calls.append(t) or real(t))
    assert loads(b'{"type": "content_block_delta", "index": 0}') == {
        "type": "content_block_delta", "index": 0}
    assert loads('{"usage": {"output_tokens": 12}}') == {"usage": {"output_tokens": 12}}
    assert len(calls) == 2
    assert loads(b'[100000000000000000000]') == [10 ** 20]
    assert len(calls) == 2


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value if not (isinstance(value, float) and math.isnan(value)) else "nan"
