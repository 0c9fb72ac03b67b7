"""app.wire.jsoncodec: msgspec's decoding and orjson's encoding where they give the standard
library's exact values, the standard library itself (values and error wording) everywhere else."""

from __future__ import annotations

import json
import math

import pytest
from hypothesis import given, settings, strategies as st

from app.wire import jsoncodec
from app.wire.jsoncodec import dumps, loads
from tests.http_fakes import fixture_requests

EXACT_CASES = [
    b'{"n": 18446744073709551616}',  # 2**64: orjson would have given a float
    b'{"n": -9223372036854775809}',  # below -2**63, with only 19 digits
    b'{"n": -9999999999999999999}',
    b'[123456789012345678901234567890, 1]',
    '{"text": "id 12345678901234567890123"}',  # a long digit run inside a string: still exact
    b'{"ok": 18446744073709551615, "neg": -9223372036854775808}',  # the 64-bit edges
    b'{"a": 1, "a": 2}',
    b'[1E2, 0.1, 1e-7, -0, 0.30000000000000004]',
    b'{"s": "\\ud83d"}',  # a lone surrogate escape: msgspec refuses, the stdlib keeps it
    b'[NaN, Infinity, -Infinity]',
    b'[1e400]',
    b'\xef\xbb\xbf{"bom": true}',  # bytes with a UTF-8 BOM: msgspec refuses, the stdlib reads them
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


def test_the_fast_decoder_is_taken_wherever_it_is_exact(monkeypatch):
    """Ordinary text and integers of any size are msgspec's; the stdlib only gets what msgspec
    refuses."""
    fast, std = [], []
    real_fast, real_std = jsoncodec._fast_loads, jsoncodec._std_loads
    monkeypatch.setattr(jsoncodec, "_fast_loads", lambda t: fast.append(t) or real_fast(t))
    monkeypatch.setattr(jsoncodec, "_std_loads", lambda t: std.append(t) or real_std(t))
    assert loads(b'{"type": "content_block_delta", "index": 0}') == {
        "type": "content_block_delta", "index": 0}
    assert loads('{"usage": {"output_tokens": 12}}') == {"usage": {"output_tokens": 12}}
    assert loads(b'[100000000000000000000]') == [10 ** 20]
    assert (len(fast), std) == (3, [])
    assert loads(b'"\\ud83d"') == "\ud83d"
    assert loads(bytearray(b"[1]")) == [1]
    assert (len(fast), len(std)) == (4, 2)


ANY_CHARACTER = st.characters(exclude_categories=())  # lone surrogates too
JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.floats(allow_nan=False, allow_infinity=False)
    | st.integers(min_value=-(2 ** 80), max_value=2 ** 80) | st.text(ANY_CHARACTER),
    lambda inner: st.lists(inner, max_size=5)
    | st.dictionaries(st.text(ANY_CHARACTER, max_size=8), inner, max_size=5),
    max_leaves=30)


@settings(max_examples=300, deadline=None, derandomize=True)
@given(JSON_VALUES, st.booleans())
def test_any_json_decodes_as_with_the_standard_library(value, ascii_only):
    """Unicode (lone surrogates included), big integers, floats at every scale, nesting."""
    text = json.dumps(value, ensure_ascii=ascii_only)
    for form in (text, text.encode("utf-8", "surrogatepass")):
        got, want = loads(form), json.loads(form)
        assert repr(got) == repr(want)


@settings(max_examples=200, deadline=None, derandomize=True)
@given(JSON_VALUES)
def test_any_value_encodes_to_json_the_standard_library_reads_back(value):
    assert repr(json.loads(dumps(value))) == repr(json.loads(json.dumps(value)))


def _leaves(value):
    if isinstance(value, dict):
        for v in value.values():
            yield from _leaves(v)
    elif isinstance(value, list):
        for v in value:
            yield from _leaves(v)
    else:
        yield value if not (isinstance(value, float) and math.isnan(value)) else "nan"
