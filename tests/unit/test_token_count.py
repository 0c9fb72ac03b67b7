"""estimate_input_tokens: plausible on real Claude Code bodies, monotonic, images and PDFs not
counted as base64 text, fast."""

import base64
import copy
import json
import time

import pytest

from tests.paths import CLAUDE_CODE_FIXTURES
from app.translate.token_count import NEW_TOKENIZER_SCALE, estimate_input_tokens, text_tokens

CC_FIXTURES = CLAUDE_CODE_FIXTURES


def load_bodies():
    out = []
    for path in sorted(CC_FIXTURES.glob("*/*.jsonl")):
        for i, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            rec = json.loads(line)
            out.append(("%s/%s#%d" % (path.parent.name, path.stem, i), rec["body"], rec.get("body_bytes")))
    return out


BODIES = load_bodies() if CC_FIXTURES.exists() else []
needs_fixtures = pytest.mark.skipif(not BODIES, reason="shared Claude Code fixtures not available")

PROSE = (
    "The gateway translates requests from Claude Code into calls to SAP AI Core. It keeps the "
    "stream open, relays every event as soon as it arrives, and reports usage at the end. When "
    "the upstream fails before the first byte, the client gets a proper status code instead. "
)
CODE = (
    "def relay(upstream, translator):\n"
    "    for chunk in upstream.iter_content(chunk_size=None):\n"
    "        for event in decoder.feed(chunk):\n"
    "            out = translator.feed(event.data)\n"
    "            if out:\n"
    "                yield out\n"
)


def body_with(text):
    return {"model": "m", "messages": [{"role": "user", "content": text}]}


def png_b64(width, height, payload=0):
    head = b"\x89PNG\r\n\x1a\n" + b"\x00\x00\x00\x0dIHDR" + width.to_bytes(4, "big") + height.to_bytes(4, "big")
    return base64.b64encode(head + b"\x08\x06\x00\x00\x00" + b"\x00" * payload).decode()


def image_block(data, media_type="image/png"):
    return {"type": "image", "source": {"type": "base64", "media_type": media_type, "data": data}}


# -- real bodies ----------------------------------------------------------------------------------


@needs_fixtures
def test_hello_body_lands_in_expected_range():
    name, body, size = next(b for b in BODIES if b[0] == "2.1.332/hello_sap#0")
    assert 48_000 < size < 50_000
    assert 11_000 <= estimate_input_tokens(body) <= 15_000


@needs_fixtures
@pytest.mark.parametrize("name, body, size", BODIES, ids=[b[0] for b in BODIES])
def test_fixture_bodies_plausible(name, body, size):
    n = estimate_input_tokens(body)
    assert n >= 1
    if size and size > 20_000:
        # Claude Code bodies: about 4 bytes of JSON per token (claude-code.md §10)
        assert 3.0 <= size / n <= 5.0, (size, n)


@needs_fixtures
def test_no_toolsearch_body_is_fast():
    name, body, size = next(b for b in BODIES if b[0] == "2.1.332/no_toolsearch#0")
    assert size > 75_000
    estimate_input_tokens(body)  # warm up
    best = min(_timed(estimate_input_tokens, body) for _ in range(5))
    assert best < 0.020, best  # typically well under 1 ms; loose bound for noisy CI


def _timed(fn, arg):
    start = time.perf_counter()
    fn(arg)
    return time.perf_counter() - start


@needs_fixtures
def test_body_not_mutated():
    name, body, size = next(b for b in BODIES if b[0] == "2.1.332/tools#1")
    before = copy.deepcopy(body)
    estimate_input_tokens(body)
    assert body == before


# -- behaviour ------------------------------------------------------------------------------------


@pytest.mark.parametrize("body", [{}, {"messages": []}, {"messages": [{"role": "user", "content": ""}]}, None, [], "x"])
def test_never_zero(body):
    assert estimate_input_tokens(body) >= 1


def test_small_request():
    n = estimate_input_tokens(body_with("foo"))
    assert 1 <= n <= 15


def test_prose_ratio_is_claude_like():
    text = PROSE * 20
    chars_per_token = len(text) / (text_tokens(text) * 1.10)
    assert 3.3 <= chars_per_token <= 4.8, chars_per_token


def test_code_and_json_are_denser_than_prose():
    prose = len(PROSE) / text_tokens(PROSE)
    code = len(CODE) / text_tokens(CODE)
    js = json.dumps({"a": [1, 2, {"b": None, "c": "x"}], "d": {"e": True}})
    assert code < prose
    assert len(js) / text_tokens(js) < prose


def test_monotonic_in_text_added():
    previous = 0
    text = ""
    for i in range(30):
        text += PROSE if i % 2 else CODE
        n = estimate_input_tokens(body_with(text))
        assert n > previous
        previous = n


def test_every_section_counts():
    base = body_with("hello")
    n0 = estimate_input_tokens(base)
    variants = [
        dict(base, system="You are a careful assistant. " * 20),
        dict(base, system=[{"type": "text", "text": "You are a careful assistant. " * 20}]),
        dict(base, tools=[{"name": "Read", "description": "Read a file. " * 20,
                           "input_schema": {"type": "object", "properties": {"path": {"type": "string"}}}}]),
        dict(base, messages=base["messages"] + [
            {"role": "assistant", "content": [
                {"type": "thinking", "thinking": "Let me think about this. " * 20, "signature": "EqQB"},
                {"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {"path": "a.py" * 50}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": CODE * 5}]},
        ]),
        dict(base, messages=[{"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t", "content": [{"type": "text", "text": CODE * 5}]}]}]),
        dict(base, messages=[{"role": "user", "content": [
            {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": PROSE * 10}}]}]),
    ]
    for body in variants:
        assert estimate_input_tokens(body) > n0 + 50, body


def test_deferred_tools_count_by_name_only():
    tool = {"name": "Monitor", "description": "Watch things. " * 200, "input_schema": {"type": "object"}}
    full = estimate_input_tokens(dict(body_with("hi"), tools=[tool]))
    deferred = estimate_input_tokens(dict(body_with("hi"), tools=[dict(tool, defer_loading=True)]))
    assert deferred < full - 500


def test_server_tool_counted_without_schema():
    n = estimate_input_tokens(dict(body_with("hi"), tools=[{"type": "web_search_20250305", "name": "web_search", "max_uses": 8}]))
    assert 300 < n < 600


def test_scale():
    body = body_with(PROSE * 50)
    n = estimate_input_tokens(body)
    assert estimate_input_tokens(body, scale=NEW_TOKENIZER_SCALE) == pytest.approx(n * NEW_TOKENIZER_SCALE, rel=0.01)


def test_non_ascii_counts_more_per_char_than_english():
    english = "This is a short English sentence about token counting. " * 10
    cjk = "这是一个关于令牌计数的简短中文句子。" * 10
    assert text_tokens(cjk) / len(cjk) > text_tokens(english) / len(english)


# -- images and documents -------------------------------------------------------------------------


def test_image_base64_not_counted_as_text():
    big = png_b64(1000, 1000, payload=750_000)  # ~1 MB of base64
    body = {"messages": [{"role": "user", "content": [image_block(big), {"type": "text", "text": "What is this?"}]}]}
    n = estimate_input_tokens(body)
    assert 1_333 <= n <= 1_700  # 1000*1000/750, not ~250k text tokens


def test_small_png_uses_its_size():
    body = {"messages": [{"role": "user", "content": [image_block(png_b64(100, 100))]}]}
    assert estimate_input_tokens(body) < 60  # ceil(100*100/750) = 14 plus overheads


def test_unknown_image_size_is_1600():
    body = {"messages": [{"role": "user", "content": [image_block(base64.b64encode(b"not an image" * 100).decode())]}]}
    assert 1_600 <= estimate_input_tokens(body) <= 1_620
    url = {"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]}
    assert 1_600 <= estimate_input_tokens(url) <= 1_620


def test_explicit_width_height():
    block = {"type": "image", "width": 300, "height": 250, "source": {"type": "url", "url": "https://x/y.png"}}
    assert estimate_input_tokens({"messages": [{"role": "user", "content": [block]}]}) < 120


@pytest.mark.parametrize(
    "raw, media_type, expected",
    [
        (b"GIF89a" + (200).to_bytes(2, "little") + (150).to_bytes(2, "little") + b"\x00" * 20, "image/gif", 40),
        (b"RIFF" + b"\x00" * 4 + b"WEBPVP8X" + b"\x00" * 8 + (199).to_bytes(3, "little") + (149).to_bytes(3, "little") + b"\x00" * 8,
         "image/webp", 40),
        (b"\xff\xd8" + b"\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
         + b"\xff\xc0\x00\x11\x08" + (150).to_bytes(2, "big") + (200).to_bytes(2, "big") + b"\x03" + b"\x00" * 9 + b"\xff\xd9",
         "image/jpeg", 40),
    ],
)
def test_image_headers(raw, media_type, expected):
    block = image_block(base64.b64encode(raw).decode(), media_type)
    n = estimate_input_tokens({"messages": [{"role": "user", "content": [block]}]})
    assert 40 <= n <= 60  # ceil(200*150/750) = 40 plus overheads


def test_image_inside_tool_result():
    block = {"type": "tool_result", "tool_use_id": "t", "content": [image_block(png_b64(2000, 2000, payload=100_000))]}
    n = estimate_input_tokens({"messages": [{"role": "user", "content": [block]}]})
    assert 1_600 <= n <= 1_650  # capped


def test_pdf_counted_by_pages_not_base64():
    pdf = b"%PDF-1.4\n" + b"".join(b"%d 0 obj << /Type /Page /Parent 1 0 R >> endobj\n" % i for i in range(3))
    pdf += b"1 0 obj << /Type /Pages /Count 3 >> endobj\n" + b"x" * 300_000
    block = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf",
                                            "data": base64.b64encode(pdf).decode()}}
    n = estimate_input_tokens({"messages": [{"role": "user", "content": [block]}]})
    assert 6_000 <= n <= 6_100
