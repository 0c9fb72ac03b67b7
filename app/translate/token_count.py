"""Local input-token estimate for ``POST /v1/messages/count_tokens`` (and for the
"prompt is too long" message and translated ``message_start`` usage).

Owns :func:`estimate_input_tokens`. No network, no tokenizer files: SAP AI Core exposes no
token-counting endpoint and Claude's current tokenizer is not public.

How the estimate works
----------------------
All countable text of the request is gathered into one string (system text, message text,
``tool_result`` content, ``tool_use`` name + JSON of its input, thinking text, document text,
tool names, descriptions and JSON of ``input_schema``), encoded once, and measured with a few
byte-class counts that run in C (``bytes.translate``/``bytes.count``): ASCII letters and digits,
ASCII punctuation, spaces, newlines/tabs, runs of four spaces, and non-ASCII bytes. Tokens are a
linear function of those counts (punctuation and line breaks cost far more per character than
letters, which is why code and JSON are denser than prose). Images are never counted as text:
``width * height / 750`` tokens (Anthropic's published rule) capped at 1,600, with the size read
from the PNG/GIF/JPEG/WebP header when it is in the block, else 1,600. PDFs cost about 2,000
tokens per page (pages counted in the file when it is inline). Small fixed overheads are added
per request, message, content block and tool, plus Anthropic's documented tool-use system
prompt (~350 tokens) when tools are present. Tools with ``defer_loading`` count by name only.
Thinking text of every assistant turn is counted (the API may strip older turns, so this errs
high, which is the safe side for auto-compaction).

Calibration and expected accuracy (be honest: no real Claude 4 tokenizer was available)
--------------------------------------------------------------------------------------
The byte-class coefficients were fitted (weighted least squares, relative error) against
Anthropic's *legacy* Claude tokenizer (the ``tokenizer.json`` the anthropic SDK shipped until
0.38) on ~690 text samples: the Claude Code 2.0.76/2.1.332 request fixtures (system prompt
paragraphs, tool descriptions, JSON schemas, messages), Python source, ``cat -n`` style file
listings, JSON, and a few non-English sentences. Against that tokenizer the fit is within about
±5% per sample category in total (median per-sample error 3-7%, p90 under ~15% for prose and
code; up to ~25% for short chat messages and CJK text), where ``len/4`` is off by 10-25%.

Claude 3 to 4.6 count somewhat more tokens than the legacy tokenizer for the same text
(published comparisons: about +7-10% on real usage; ``o200k`` x 1.15-1.18 is used by other
proxies), so the text count is multiplied by :data:`CLAUDE_FACTOR` = 1.10. For these bodies that
gives about 3.7-4.0 UTF-8 bytes per token, matching the "~4 bytes per token" rule of thumb of
``claude-code.md`` §10, and ~4.2 characters per token for English prose (Anthropic's own
"~3.5 characters per token" for plain English is a looser, older figure that includes short
messages). Expect roughly ±15% against Claude's real ``input_tokens`` (+ cache) for Claude Code
traffic on Claude 3-4.6; the tokenizer introduced with Opus 4.7 is reported to produce ~30% more
tokens, so callers pass ``scale=NEW_TOKENIZER_SCALE`` (or a moving ratio learnt from real usage,
as clients-and-pain-points.md §6 suggests) for those models.

Speed: one pass over ~80 KB of text is well under a millisecond (see the unit test).
Pure and stdlib-only.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import re
from typing import Any, Dict, List

__all__ = ["estimate_input_tokens", "text_tokens", "CLAUDE_FACTOR", "NEW_TOKENIZER_SCALE"]

#: Claude 3-4.6 tokens per legacy-tokenizer token (see the module docstring).
CLAUDE_FACTOR = 1.10
#: Extra factor for models with the tokenizer introduced with Opus 4.7 (reported ~+30%).
NEW_TOKENIZER_SCALE = 1.3

# Fitted coefficients, tokens per byte of each class (legacy Claude tokenizer).
_K_ALNUM = 0.1408
_K_PUNCT = 0.6438
_K_SPACE = 0.4623
_K_NEWLINE = 1.4862
_K_HIGH = 0.2553
_K_INDENT4 = -1.4588  # per run of four spaces: long whitespace runs merge into few tokens

_ALNUM = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
_HIGH = bytes(range(128, 256))

# Overheads (tokens).
_PER_REQUEST = 4
_PER_MESSAGE = 4
_PER_BLOCK = 2
_PER_TOOL_USE = 10  # call framing around name + input
_PER_TOOL_RESULT = 6
_PER_TOOL = 8
_TOOL_SYSTEM_PROMPT = 346  # Anthropic docs, Claude 4 family, tool_choice auto/none
_DEFERRED_TOOL = 4  # plus its name
_SERVER_TOOL = 100  # e.g. web_search_20250305: definition injected server-side (a guess)

_IMAGE_MAX = 1600
_PDF_PER_PAGE = 2000
_PDF_UNKNOWN = 3000
_MAX_SCAN = 20 * 1024 * 1024  # never decode more base64 than this to look at a file

_PDF_PAGE_RE = re.compile(rb"/Type\s*/Page(?![A-Za-z])")
_json_dumps = json.JSONEncoder(ensure_ascii=False).encode  # default ", " / ": " separators (as calibrated)


def text_tokens(text: str) -> float:
    """Estimated Claude tokens of a piece of text (before :data:`CLAUDE_FACTOR`)."""
    if not text:
        return 0.0
    b = text.encode("utf-8", "surrogatepass")
    n = len(b)
    alnum = n - len(b.translate(None, _ALNUM))
    high = 0 if text.isascii() else n - len(b.translate(None, _HIGH))
    space = b.count(b" ")
    newline = b.count(b"\n") + b.count(b"\t")
    indent = b.count(b"    ")
    punct = n - alnum - high - space - newline - b.count(b"\r")
    est = (
        _K_ALNUM * alnum
        + _K_PUNCT * punct
        + _K_SPACE * space
        + _K_NEWLINE * newline
        + _K_HIGH * high
        + _K_INDENT4 * indent
    )
    return est if est > 0.0 else 0.0


def estimate_input_tokens(body: Dict[str, Any], *, scale: float = 1.0) -> int:
    """Estimated ``input_tokens`` of an Anthropic Messages request body (at least 1).

    ``scale`` multiplies the result: a per-model calibration ratio or
    :data:`NEW_TOKENIZER_SCALE`. ``body`` is not mutated."""
    if not isinstance(body, dict):
        return 1
    parts: List[str] = []
    fixed = float(_PER_REQUEST)

    system = body.get("system")
    if isinstance(system, str):
        parts.append(system)
    elif isinstance(system, list):
        for block in system:
            fixed += _block(block, parts)

    messages = body.get("messages")
    if isinstance(messages, list):
        for message in messages:
            if not isinstance(message, dict):
                continue
            fixed += _PER_MESSAGE
            content = message.get("content")
            if isinstance(content, str):
                parts.append(content)
            elif isinstance(content, list):
                for block in content:
                    fixed += _block(block, parts)

    tools = body.get("tools")
    if isinstance(tools, list) and tools:
        fixed += _TOOL_SYSTEM_PROMPT
        for tool in tools:
            if not isinstance(tool, dict):
                continue
            name = tool.get("name")
            if isinstance(name, str):
                parts.append(name)
            if tool.get("defer_loading"):
                fixed += _DEFERRED_TOOL
                continue
            schema = tool.get("input_schema")
            if schema is None and tool.get("type") not in (None, "custom"):
                fixed += _SERVER_TOOL
                continue
            fixed += _PER_TOOL
            description = tool.get("description")
            if isinstance(description, str):
                parts.append(description)
            if schema is not None:
                parts.append(_json_dumps(schema))

    total = (text_tokens("\n".join(parts)) * CLAUDE_FACTOR + fixed) * scale
    return max(1, int(math.ceil(total)))


# -- content blocks ---------------------------------------------------------------------------


def _block(block: Any, parts: List[str]) -> float:
    """Add a block's countable text to ``parts``; return its fixed token cost."""
    if isinstance(block, str):
        parts.append(block)
        return 0.0
    if not isinstance(block, dict):
        return 0.0
    kind = block.get("type")
    handler = _BLOCK_HANDLERS.get(kind) if type(kind) is str else None
    if handler is None:
        return _PER_BLOCK + _generic(block, parts)
    return _PER_BLOCK + handler(block, parts)


def _text(block: Dict[str, Any], parts: List[str]) -> float:
    text = block.get("text")
    if isinstance(text, str):
        parts.append(text)
    return 0.0


def _thinking(block: Dict[str, Any], parts: List[str]) -> float:
    text = block.get("thinking")
    if isinstance(text, str):
        parts.append(text)
    return 0.0


def _redacted_thinking(block: Dict[str, Any], parts: List[str]) -> float:
    data = block.get("data")
    return len(data) / 4.0 if isinstance(data, str) else 0.0  # opaque: bytes-per-token guess


def _tool_use(block: Dict[str, Any], parts: List[str]) -> float:
    name = block.get("name")
    if isinstance(name, str):
        parts.append(name)
    if "input" in block:
        parts.append(_json_dumps(block["input"]))
    return _PER_TOOL_USE


def _tool_result(block: Dict[str, Any], parts: List[str]) -> float:
    fixed = float(_PER_TOOL_RESULT)
    content = block.get("content")
    if isinstance(content, str):
        parts.append(content)
    elif isinstance(content, list):
        for inner in content:
            fixed += _block(inner, parts)
    return fixed


def _image(block: Dict[str, Any], parts: List[str]) -> float:
    width, height = block.get("width"), block.get("height")
    if not (isinstance(width, int) and isinstance(height, int)):
        width = height = None
        source = block.get("source")
        if isinstance(source, dict) and source.get("type") == "base64":
            size = _image_size(source.get("data"))
            if size:
                width, height = size
    if width and height and width > 0 and height > 0:
        return float(min(_IMAGE_MAX, max(1, math.ceil(width * height / 750.0))))
    return float(_IMAGE_MAX)


def _document(block: Dict[str, Any], parts: List[str]) -> float:
    fixed = 0.0
    for key in ("title", "context"):
        value = block.get(key)
        if isinstance(value, str):
            parts.append(value)
    source = block.get("source")
    if not isinstance(source, dict):
        return fixed
    stype = source.get("type")
    if stype == "text":
        data = source.get("data")
        if isinstance(data, str):
            parts.append(data)
    elif stype == "content":
        content = source.get("content")
        if isinstance(content, str):
            parts.append(content)
        elif isinstance(content, list):
            for inner in content:
                fixed += _block(inner, parts)
    elif stype == "base64":
        pages = _pdf_pages(source.get("data"))
        fixed += pages * _PDF_PER_PAGE if pages else _PDF_UNKNOWN
    else:  # url / file: content unknown here
        fixed += _PDF_UNKNOWN
    return fixed


_SKIP_KEYS = frozenset(("type", "id", "tool_use_id", "cache_control", "signature", "media_type", "citations"))


def _generic(value: Any, parts: List[str]) -> float:
    """Unknown block types (server tool results, search results, ...): count their strings."""
    if isinstance(value, str):
        parts.append(value)
    elif isinstance(value, dict):
        for key, inner in value.items():
            if key not in _SKIP_KEYS:
                _generic(inner, parts)
    elif isinstance(value, list):
        for inner in value:
            _generic(inner, parts)
    return 0.0


_BLOCK_HANDLERS = {
    "text": _text,
    "thinking": _thinking,
    "redacted_thinking": _redacted_thinking,
    "tool_use": _tool_use,
    "server_tool_use": _tool_use,
    "tool_result": _tool_result,
    "image": _image,
    "document": _document,
}


# -- file headers -------------------------------------------------------------------------------


def _b64_prefix(data: Any, nbytes: int) -> bytes:
    """The first ~``nbytes`` decoded bytes of a base64 string (b"" if unusable)."""
    if not isinstance(data, str) or not data:
        return b""
    chunk = data[: ((nbytes + 2) // 3) * 4]
    try:
        return base64.b64decode(chunk + "=" * (-len(chunk) % 4))
    except (binascii.Error, ValueError):
        return b""


def _image_size(data: Any) -> "tuple[int, int] | None":
    """Width and height from a PNG, GIF, WebP or JPEG header inside base64 data."""
    head = _b64_prefix(data, 64)
    if head[:8] == b"\x89PNG\r\n\x1a\n" and len(head) >= 24:
        return int.from_bytes(head[16:20], "big"), int.from_bytes(head[20:24], "big")
    if head[:6] in (b"GIF87a", b"GIF89a") and len(head) >= 10:
        return int.from_bytes(head[6:8], "little"), int.from_bytes(head[8:10], "little")
    if head[:4] == b"RIFF" and head[8:12] == b"WEBP" and len(head) >= 30:
        kind = head[12:16]
        if kind == b"VP8X":
            return 1 + int.from_bytes(head[24:27], "little"), 1 + int.from_bytes(head[27:30], "little")
        if kind == b"VP8 ":
            return int.from_bytes(head[26:28], "little") & 0x3FFF, int.from_bytes(head[28:30], "little") & 0x3FFF
        if kind == b"VP8L":
            bits = int.from_bytes(head[21:25], "little")
            return (bits & 0x3FFF) + 1, ((bits >> 14) & 0x3FFF) + 1
    if head[:2] == b"\xff\xd8":
        return _jpeg_size(_b64_prefix(data, 256 * 1024))
    return None


_SOF_MARKERS = frozenset(range(0xC0, 0xD0)) - {0xC4, 0xC8, 0xCC}


def _jpeg_size(buf: bytes) -> "tuple[int, int] | None":
    i = 2
    n = len(buf)
    while i + 9 < n:
        if buf[i] != 0xFF:
            return None
        marker = buf[i + 1]
        if marker == 0xFF:  # fill byte
            i += 1
            continue
        if marker in (0xD8, 0x01) or 0xD0 <= marker <= 0xD7:
            i += 2
            continue
        length = int.from_bytes(buf[i + 2 : i + 4], "big")
        if marker in _SOF_MARKERS:
            return int.from_bytes(buf[i + 7 : i + 9], "big"), int.from_bytes(buf[i + 5 : i + 7], "big")
        i += 2 + length
    return None


def _pdf_pages(data: Any) -> int:
    """Page objects in an inline base64 PDF (0 if unknown, e.g. compressed object streams)."""
    if not isinstance(data, str) or not data or len(data) > _MAX_SCAN * 4 // 3:
        return 0
    raw = _b64_prefix(data, len(data))
    if not raw.startswith(b"%PDF"):
        return 0
    return len(_PDF_PAGE_RE.findall(raw))
