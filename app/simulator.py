"""A simulated SAP AI Core: the `python -m app demo` backend, and the fake used by tests and benchmarks.

It emulates, on a real loopback HTTP server (Werkzeug, threaded), the parts of SAP AI Core the
gateway talks to (``shared/spec/sap-ai-core.md``):

* XSUAA ``POST /auth/oauth/token`` (client credentials; Basic auth, ``grant_type`` in the query, or
  ``client_id``/``client_secret`` in the form body), issuing ``tok-<n>`` bearer tokens that expire;
* the AI API ``GET /v2/lm/deployments`` (and ``/v2/lm/deployments/<id>``), per resource group;
* Claude on Bedrock: ``POST /v2/inference/deployments/<id>/invoke`` and
  ``/invoke-with-response-stream``, with Bedrock's request validation (the rejections of spec §7),
  the non-streaming Message JSON (§6.2) and the SSE stream of ``data:`` lines without ``event:``
  lines, ending in ``message_stop`` with ``amazon-bedrock-invocationMetrics`` (§6.3);
* ``/converse`` and ``/converse-stream`` answer 404: the gateway must never call them;
* Azure OpenAI (SAP names ``gpt-*``, ``o1``, ``o3*``, ``o4-*``, ``text-embedding-*``):
  ``POST .../chat/completions?api-version=V`` with Azure's request rules (api-version, reasoning-model
  parameters, message and tool-call shapes; §8.1), the chat.completion (§8.2) and the chunk stream
  with its filter-only first chunk, optional usage chunk and one ``[DONE]`` (§8.3); and
  ``POST .../embeddings?api-version=V`` with deterministic unit vectors (§8.4). Errors in Azure's
  ``{"error": {...}}`` shape;
* Gemini on Vertex (``gemini-*``): ``POST .../models/<model>:generateContent`` and
  ``:streamGenerateContent`` with Vertex's request rules (roles, parts, ``functionResponse.id``,
  the schema subset of §9.5, function names, function-call/response turn order, thought
  signatures on gemini-3*), the GenerateContentResponse (§9.2) and its SSE stream (§9.3). Errors in
  Google's ``{"error": {"code", "message", "status"}}`` shape.

The "model" is deterministic: it greets, echoes tool results ("Tool said: ...") and asks for one
``Bash`` tool call when the user asks to run something (see :func:`build_reply`); every family
answers the same reply, mapped to its wire format (Azure ``tool_calls``, Gemini ``functionCall``
parts, thinking as Azure reasoning tokens or Gemini thought parts).

Failures are scripted per deployment with :class:`Step` objects (status sequences with
``Retry-After``, a revoked token, delays, silence gaps, byte-level chunking, mid-stream errors,
early EOF, malformed lines, a 1 MB event); they work on every family's endpoints. Every request
is recorded for assertions. A handler table per model family (``FakeAICore._families``) routes
the calls.

Usage::

    with FakeAICore() as fake:
        dep_url = fake.add_deployment("d1", "anthropic--claude-4.5-sonnet")
        fake.script("d1", Step(status=429, retry_after=2), Step())
        key = fake.service_key()          # give this to the gateway
        ...
        assert fake.requests[-1].headers["ai-resource-group"] == "default"

Command line (benchmarks, manual checks with the Claude Code CLI)::

    python -m app.simulator --port 0 --models anthropic--claude-4.5-sonnet \
        --first-token-delay 0.05 --chunks 20 --interval 0.005 --write-key /tmp/key.json
    python -m app.simulator --add-model gpt-5.4 --add-model gemini-2.5-pro   # plus the defaults

prints ``READY <base_url>`` and serves until SIGTERM/SIGINT.

Only the standard library, Flask and Werkzeug are used; nothing from ``app/`` is imported.
"""

from __future__ import annotations

import argparse
import array
import base64
import collections
import dataclasses
import functools
import hashlib
import itertools
import json
import math
import random
import re
import signal
import string
import struct
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote_plus

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

from app.wire.jsoncodec import loads

# --------------------------------------------------------------------------------------------
# Constants: what Bedrock on SAP AI Core accepts (spec §6.1, §7)
# --------------------------------------------------------------------------------------------

ANTHROPIC_VERSION = "bedrock-2023-05-31"

#: Betas Bedrock on AI Core is known to accept (spec §7 table).
DEFAULT_ALLOWED_BETAS = frozenset(
    {
        "interleaved-thinking-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
        "context-1m-2025-08-07",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)

#: Fields rejected with "<field>: Extra inputs are not permitted". Dotted entries are nested paths.
DEFAULT_REJECT_FIELDS = frozenset(
    {
        "context_management",
        "output_config",
        "safeguards",
        "service_tier",
        "container",
        "mcp_servers",
        "thinking.display",
        "thinking.context_management",
    }
)

#: Top-level keys of the Bedrock Messages schema.
BASE_TOP_LEVEL_KEYS = frozenset(
    {
        "anthropic_version", "anthropic_beta", "max_tokens", "messages", "system", "tools",
        "tool_choice", "thinking", "temperature", "top_p", "top_k", "stop_sequences", "metadata",
    }
)
#: Keys some models accept; they pass unless listed in ``reject_fields``.
OPTIONAL_TOP_LEVEL_KEYS = frozenset(
    {"context_management", "output_config", "safeguards", "service_tier", "container", "mcp_servers"}
)

#: Output-token maximum per SAP model name; others get ``FALLBACK_MAX_TOKENS``.
DEFAULT_MODEL_MAX_TOKENS = {
    "anthropic--claude-3.7-sonnet": 64000,
    "anthropic--claude-4-sonnet": 64000,
    "anthropic--claude-4-opus": 32000,
    "anthropic--claude-4.1-opus": 32000,
    "anthropic--claude-4.5-sonnet": 64000,
    "anthropic--claude-4.5-haiku": 64000,
    "anthropic--claude-4.5-opus": 64000,
    "anthropic--claude-4.6-sonnet": 64000,
    "anthropic--claude-4.6-opus": 128000,
}
FALLBACK_MAX_TOKENS = 64000

#: Anthropic model id reported in responses, per SAP model name.
ANTHROPIC_MODEL_IDS = {
    "anthropic--claude-3.7-sonnet": "claude-3-7-sonnet-20250219",
    "anthropic--claude-4-sonnet": "claude-sonnet-4-20250514",
    "anthropic--claude-4-opus": "claude-opus-4-20250514",
    "anthropic--claude-4.1-opus": "claude-opus-4-1-20250805",
    "anthropic--claude-4.5-sonnet": "claude-sonnet-4-5-20250929",
    "anthropic--claude-4.5-haiku": "claude-haiku-4-5-20251001",
    "anthropic--claude-4.5-opus": "claude-opus-4-5-20251101",
}

SERVER_TOOL_PREFIXES = ("web_search_", "web_fetch_", "code_execution_", "memory_", "tool_search_tool_")
CUSTOM_TOOL_KEYS = frozenset({"type", "name", "description", "input_schema", "cache_control"})
TOOL_RESULT_BLOCK_TYPES = frozenset({"text", "image", "document", "search_result"})
TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
MAX_CACHE_BREAKPOINTS = 4

DEFAULT_REPLY = "Hello from the fake SAP AI Core."
PADDING_TEXT = " More fake text."
TOOL_TRIGGERS = ("run ", "shell", "list the files")
THINKING_TEXT = "The user wants a short answer. Keep it brief."
HUGE_DELTA_BYTES = 1_000_000
INTERNAL_ERROR = "The system encountered an unexpected error during processing. Try your request again."

#: Default ``{"message": ...}`` text per scripted error status (Bedrock wording where known).
ERROR_MESSAGES = {
    400: "The provided request is not valid",
    401: "Jwt verification fails",
    403: "RBAC: access denied",
    404: "The requested deployment was not found",
    408: "Model has timed out in processing the request. Try your request again.",
    413: "Request payload too large",
    424: "Received error from the model. Try your request again.",
    429: "Too many requests, please wait before trying again.",
    500: INTERNAL_ERROR,
    503: "Bedrock is unable to process your request.",
}

#: Mid-stream error events, one per shape listed in spec §6.3 (the value is the whole data line).
ERROR_EVENT_LINES = {
    "typed_overloaded": json.dumps({"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}),
    "typed_error_message": json.dumps(
        {"type": "error", "message": "ThrottlingException: Too many tokens, please wait before trying again."}
    ),
    "toplevel_message": json.dumps({"message": "modelStreamErrorException: The model stream was interrupted."}),
    "toplevel_error": json.dumps({"error": {"message": "internalServerException: Internal server error"}}),
    "non_json": "serviceUnavailableException: Bedrock is unable to process your request.",
}
MALFORMED_LINE = '{"type":"content_block_delta","index":0,"delta":{"type":"text_del'


# --------------------------------------------------------------------------------------------
# Records and scripts
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class Step:
    """One scripted behaviour, consumed by one inference call of a deployment.

    Defaults mean "behave normally"; set only what the test needs.

    status: HTTP status to answer (non-200 skips validation and answers a Bedrock-like
        ``{"message": ...}``; see ``ERROR_MESSAGES``).
    retry_after: value of the ``Retry-After`` header on that answer (seconds).
    body: replaces the response body: a dict is sent as JSON, ``str``/``bytes`` as is (for a
        200 stream, the raw SSE body; chunking still applies).
    headers_delay: seconds to wait before sending the status line and headers.
    first_event_delay: seconds between headers and the first SSE event (0 = use the fake's
        ``first_token_delay``).
    gap_after_event: ``(index, seconds)``: silence after SSE event ``index`` (0-based).
    chunking: ``"byte"`` (one byte per write), ``"random"`` (random splits across the whole
        stream, so events are split and merged), ``"crlf"`` (``\\r\\n`` line endings).
    error_event: emit a mid-stream error and end the stream; one of ``ERROR_EVENT_LINES``
        (``typed_overloaded``, ``typed_error_message``, ``toplevel_message``, ``toplevel_error``,
        ``non_json``), or on Azure one of ``AZURE_ERROR_EVENT_LINES`` (``server_error``,
        ``rate_limit``, ``content_filter``, ``non_json``), on Gemini one of
        ``GEMINI_ERROR_EVENT_LINES`` (``internal``, ``unavailable``, ``resource_exhausted``,
        ``non_json``). A Bedrock name on the other families means its nearest equivalent
        (``ERROR_EVENT_ALIASES``), so one script fits every family.
    error_after_events: how many normal events precede the error event (0 = before message_start;
        Azure: before the filter-only first chunk).
    eof_after_events: end the stream cleanly after this many events (no ``message_stop``).
    malformed_line_after: insert a truncated JSON ``data:`` line after this many events, then go on.
    huge_json_delta: the reply is a ``Write`` tool call whose input arrives as one ~1 MB
        ``input_json_delta``.
    reply: what the model says: a string (one text block) or a list of content blocks
        (``text``/``tool_use``/``thinking`` dicts, full form as in a non-streaming response).
        Azure and Gemini map it too: several ``tool_use`` blocks are parallel tool calls;
        ``thinking`` becomes hidden reasoning tokens (Azure) or a thought part (Gemini, shown
        with ``includeThoughts``).
    revoke_token: invalidate the caller's token and answer 401 ``Jwt is expired``.
    """

    status: int = 200
    retry_after: int | float | str | None = None
    body: Any = None
    headers_delay: float = 0.0
    first_event_delay: float = 0.0
    gap_after_event: tuple[int, float] | None = None
    chunking: str | None = None
    error_event: str | None = None
    error_after_events: int = 1
    eof_after_events: int | None = None
    malformed_line_after: int | None = None
    huge_json_delta: bool = False
    reply: str | list[dict] | None = None
    revoke_token: bool = False


@dataclasses.dataclass
class Deployment:
    """A deployment as the fake knows it."""

    id: str
    model_name: str
    version: str
    resource_group: str
    status: str
    scenario: str
    created_at: str
    #: Gemini: refuse a function call of the current turn without a valid ``thoughtSignature``
    #: (None: on for gemini-3*, off otherwise).
    require_thought_signature: bool | None = None

    @property
    def family(self) -> str:
        """The executable family (spec §4) chosen by the SAP model name."""
        return model_family(self.model_name)

    @property
    def requires_thought_signature(self) -> bool:
        if self.require_thought_signature is None:
            return self.model_name.startswith("gemini-3")
        return self.require_thought_signature


class CaseInsensitiveDict(dict):
    """A dict of header names (stored lower-case) that can be read in any case."""

    def __getitem__(self, key: str) -> Any:
        return super().__getitem__(key.lower())

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and super().__contains__(key.lower())

    def get(self, key: str, default: Any = None) -> Any:
        return super().get(key.lower(), default)


@dataclasses.dataclass
class RecordedRequest:
    """One request the fake received.

    ``headers`` reads case-insensitively; ``json`` is the parsed body or None; ``raw`` the bytes;
    ``time`` is ``time.monotonic()`` at arrival; ``status`` the answered status (None while the
    view runs).
    """

    method: str
    path: str
    query: dict[str, str]
    headers: CaseInsensitiveDict
    json: Any
    raw: bytes
    deployment_id: str | None
    time: float
    status: int | None = None


@dataclasses.dataclass
class BedrockCall:
    """A validated Bedrock call: its step and what the model answers."""

    step: Step
    message_id: str
    model_id: str
    blocks: list[dict]
    usage: dict


class Rejection(Exception):
    """A request rejected by the fake with ``status`` and a ``{"message": ...}`` body."""

    def __init__(self, status: int, message: str):
        super().__init__(message)
        self.status = status
        self.message = message


# --------------------------------------------------------------------------------------------
# Model names
# --------------------------------------------------------------------------------------------

_CLAUDE_NAME_RE = re.compile(r"claude-(\d+)(?:\.(\d+))?-([a-z]+)")


def model_family(model_name: str) -> str:
    """Executable family of a SAP model name: aws-bedrock, azure-openai, gcp-vertexai or other."""
    if model_name.startswith("anthropic--"):
        return "aws-bedrock"
    if model_name.startswith(("gpt-", "o1", "o3", "o4-", "text-embedding-")):
        return "azure-openai"
    if model_name.startswith("gemini-"):
        return "gcp-vertexai"
    return "other"


def claude_version(model_name: str) -> tuple[tuple[int, int], str]:
    """``((major, minor), kind)`` of a SAP Claude name, e.g. ``((4, 5), "sonnet")``."""
    m = _CLAUDE_NAME_RE.search(model_name)
    if not m:
        return (0, 0), ""
    return (int(m.group(1)), int(m.group(2) or 0)), m.group(3)


def anthropic_model_id(model_name: str) -> str:
    """The Anthropic id Bedrock reports for a SAP model name."""
    if model_name in ANTHROPIC_MODEL_IDS:
        return ANTHROPIC_MODEL_IDS[model_name]
    (major, minor), kind = claude_version(model_name)
    return f"claude-{kind or 'fake'}-{major}-{minor}"


# --------------------------------------------------------------------------------------------
# Bedrock validation: a list of small checks, each returning an error message (400), raising
# Rejection for other statuses, or returning None.
# --------------------------------------------------------------------------------------------


@dataclasses.dataclass
class BedrockRules:
    """What the validator enforces for one call."""

    model_name: str
    max_tokens_limit: int
    reject_fields: frozenset[str]
    allowed_betas: frozenset[str]
    accept_ttl_1h: bool

    @property
    def version(self) -> tuple[int, int]:
        return claude_version(self.model_name)[0]

    @property
    def supports_adaptive(self) -> bool:
        return self.version >= (4, 6)

    @property
    def adaptive_only(self) -> bool:
        version, kind = claude_version(self.model_name)
        return kind == "opus" and version >= (4, 7)

    @property
    def rejects_prefill(self) -> bool:
        return self.version >= (4, 6)


def _extra(path: str) -> str:
    return f"{path}: Extra inputs are not permitted"


def _thinking_on(body: dict) -> bool:
    thinking = body.get("thinking")
    return isinstance(thinking, dict) and thinking.get("type") in ("enabled", "adaptive")


def _content_blocks(body: dict) -> Iterator[tuple[str, dict, str]]:
    """Yield ``(path, block, parent)`` for every block of system, messages and tool_result contents.

    ``parent`` is ``"system"``, ``"message"`` or ``"tool_result"``.
    """
    system = body.get("system")
    if isinstance(system, list):
        for k, block in enumerate(system):
            if isinstance(block, dict):
                yield f"system.{k}", block, "system"
    for i, message in enumerate(body.get("messages") or []):
        content = message.get("content") if isinstance(message, dict) else None
        if not isinstance(content, list):
            continue
        for j, block in enumerate(content):
            if not isinstance(block, dict):
                continue
            yield f"messages.{i}.content.{j}", block, "message"
            if block.get("type") == "tool_result" and isinstance(block.get("content"), list):
                for k, inner in enumerate(block["content"]):
                    if isinstance(inner, dict):
                        yield f"messages.{i}.content.{j}.content.{k}", inner, "tool_result"


def check_envelope(body: dict, rules: BedrockRules) -> str | None:
    """``model``/``stream`` must be absent; ``anthropic_version`` must be the Bedrock one."""
    for key in ("model", "stream"):
        if key in body:
            return (
                f"Malformed input request: #: extraneous key [{key}] is not permitted, "
                "please reformat your input and try again."
            )
    if "anthropic_version" not in body:
        return (
            "Malformed input request: #: required key [anthropic_version] not found, "
            "please reformat your input and try again."
        )
    if body["anthropic_version"] != ANTHROPIC_VERSION:
        return f"anthropic_version: Input should be '{ANTHROPIC_VERSION}'"
    return None


def check_fields(body: dict, rules: BedrockRules) -> str | None:
    """Unknown top-level keys and every (possibly dotted) path in ``reject_fields``."""
    for key in body:
        if key in rules.reject_fields or key not in BASE_TOP_LEVEL_KEYS | OPTIONAL_TOP_LEVEL_KEYS:
            return _extra(key)
    for path in sorted(p for p in rules.reject_fields if "." in p):
        node: Any = body
        for part in path.split("."):
            node = node.get(part) if isinstance(node, dict) else None
            if node is None:
                break
        else:
            return _extra(path)
    return None


def check_max_tokens(body: dict, rules: BedrockRules) -> str | None:
    """``max_tokens`` is a required int in ``[1, model maximum]``."""
    value = body.get("max_tokens")
    if value is None:
        return "max_tokens: Field required"
    if not isinstance(value, int) or isinstance(value, bool):
        return "max_tokens: Input should be a valid integer"
    if value < 1:
        return "max_tokens: Input should be greater than or equal to 1"
    if value > rules.max_tokens_limit:
        return (
            f"max_tokens: {value} > {rules.max_tokens_limit}, which is the maximum allowed number "
            f"of output tokens for {anthropic_model_id(rules.model_name)}"
        )
    return None


def check_betas(body: dict, rules: BedrockRules) -> str | None:
    """``anthropic_beta`` is a list of allowed beta names."""
    betas = body.get("anthropic_beta")
    if betas is None:
        return None
    if not isinstance(betas, list) or not all(isinstance(b, str) for b in betas):
        return "anthropic_beta: Input should be a valid list"
    if any(b not in rules.allowed_betas for b in betas):
        return "invalid beta flag"
    return None


def check_messages(body: dict, rules: BedrockRules) -> str | None:
    """Non-empty list of user/assistant turns starting with user; ``role: system`` is a 500."""
    messages = body.get("messages")
    if messages is None:
        return "messages: Field required"
    if not isinstance(messages, list):
        return "messages: Input should be a valid list"
    if not messages:
        return "messages: at least one message is required"
    for i, message in enumerate(messages):
        if not isinstance(message, dict):
            return f"messages.{i}: Input should be a valid dictionary"
        if message.get("role") == "system":
            raise Rejection(500, INTERNAL_ERROR)
        if message.get("role") not in ("user", "assistant"):
            return f"messages.{i}.role: Input should be 'user' or 'assistant'"
    if messages[0]["role"] != "user":
        return 'messages: first message must use the "user" role'
    if rules.rejects_prefill and messages[-1]["role"] == "assistant":
        return (
            "This model does not support assistant message prefill. "
            "The conversation must end with a user message."
        )
    return None


def check_content(body: dict, rules: BedrockRules) -> str | None:
    """No empty content or text blocks; valid tool ids; tool_result content types."""
    for i, message in enumerate(body["messages"]):
        content = message.get("content")
        if content == "" or content == [] or content is None:
            return (
                f"messages.{i}: all messages must have non-empty content except for the "
                "optional final assistant message"
            )
    system = body.get("system")
    if system is not None and not isinstance(system, (str, list)):
        return "system: Input should be a valid list"
    for path, block, parent in _content_blocks(body):
        kind = block.get("type")
        if parent == "tool_result" and kind not in TOOL_RESULT_BLOCK_TYPES:
            expected = ", ".join(f"'{t}'" for t in sorted(TOOL_RESULT_BLOCK_TYPES))
            return (
                f"{path}: Input tag '{kind}' found using 'type' does not match any of the "
                f"expected tags: {expected}"
            )
        if kind == "text":
            text = block.get("text")
            if not isinstance(text, str) or text == "":
                return f"{path}.text: text content blocks must be non-empty"
            if not text.strip():
                return f"{path}.text: text content blocks must contain non-whitespace text"
        elif kind == "tool_use" and not TOOL_ID_RE.match(str(block.get("id", ""))):
            return f"{path}.id: String should match pattern '^[a-zA-Z0-9_-]+$'"
        elif kind == "tool_result" and not TOOL_ID_RE.match(str(block.get("tool_use_id", ""))):
            return f"{path}.tool_use_id: String should match pattern '^[a-zA-Z0-9_-]+$'"
    return None


def check_tools(body: dict, rules: BedrockRules) -> str | None:
    """Non-empty tool list, custom tools only with the basic keys, no server tools."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return "tools: Input should be a valid list"
        if not tools:
            return "tools: List should have at least 1 item after validation, not 0"
        for n, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return f"tools.{n}: Input should be a valid dictionary"
            kind = tool.get("type")
            if isinstance(kind, str) and kind.startswith(SERVER_TOOL_PREFIXES):
                return (
                    f"tools.{n}: Input tag '{kind}' found using 'type' does not match any of the "
                    "expected tags: 'bash_20250124', 'custom', 'text_editor_20250124'"
                )
            if kind not in (None, "custom"):
                continue  # bash_/text_editor_/computer_ tools: not emulated
            for key in tool:
                if key not in CUSTOM_TOOL_KEYS:
                    return _extra(f"tools.{n}.custom.{key}")
            for key in ("name", "input_schema"):
                if key not in tool:
                    return f"tools.{n}.custom.{key}: Field required"
    choice = body.get("tool_choice")
    if choice is not None:
        if not tools:
            return "tool_choice: tool_choice may only be specified while providing tools"
        names = {t.get("name") for t in tools}
        if isinstance(choice, dict) and choice.get("type") == "tool" and choice.get("name") not in names:
            return f"tool_choice.name: Tool '{choice.get('name')}' not found in provided tools"
    return None


def check_cache_control(body: dict, rules: BedrockRules) -> str | None:
    """Valid cache_control objects, not on thinking blocks, at most 4, no 1h after 5m."""
    marked: list[tuple[str, dict, Any]] = []
    for n, tool in enumerate(body.get("tools") or []):
        if "cache_control" in tool:
            marked.append((f"tools.{n}", tool, tool["cache_control"]))
    for path, block, _ in _content_blocks(body):
        if "cache_control" in block:
            marked.append((path, block, block["cache_control"]))
    ttls = ("5m", "1h") if rules.accept_ttl_1h else ("5m",)
    for path, block, cc in marked:
        if cc is None:
            continue
        if not isinstance(cc, dict):
            return f"{path}.cache_control: Input should be a valid dictionary"
        if block.get("type") in ("thinking", "redacted_thinking"):
            return _extra(f"{path}.cache_control")
        for key in cc:
            if key not in ("type", "ttl"):
                return _extra(f"{path}.cache_control.{key}")
        if cc.get("type") != "ephemeral":
            return f"{path}.cache_control.type: Input should be 'ephemeral'"
        if cc.get("ttl", "5m") not in ttls:
            return f"{path}.cache_control.ttl: Input should be " + " or ".join(f"'{t}'" for t in ttls)
    breakpoints = [cc for _, _, cc in marked if cc is not None]
    if len(breakpoints) > MAX_CACHE_BREAKPOINTS:
        return (
            f"A maximum of {MAX_CACHE_BREAKPOINTS} blocks with cache_control may be provided. "
            f"Found {len(breakpoints)}."
        )
    seen_5m = False
    for cc in breakpoints:
        ttl = cc.get("ttl", "5m")
        if ttl == "1h" and seen_5m:
            return (
                "a ttl='1h' cache_control block must not come after a ttl='5m' cache_control block. "
                "Note that blocks are processed in the following order: `tools`, `system`, `messages`."
            )
        seen_5m = seen_5m or ttl == "5m"
    return None


def check_thinking(body: dict, rules: BedrockRules) -> str | None:
    """``thinking``: enabled with a budget in [1024, max_tokens), adaptive only on 4.6+."""
    thinking = body.get("thinking")
    if thinking is None:
        return None
    if not isinstance(thinking, dict):
        return "thinking: Input should be a valid dictionary"
    kind = thinking.get("type")
    tags = "'disabled', 'enabled'" + (", 'adaptive'" if rules.supports_adaptive else "")
    if kind == "disabled":
        return None
    if kind == "adaptive" and rules.supports_adaptive:
        return None
    if kind != "enabled":
        return f"thinking.type: Input tag '{kind}' found using 'type' does not match any of the expected tags: {tags}"
    if rules.adaptive_only:
        return "thinking.type.enabled is not supported for this model. Use thinking.type.adaptive instead."
    for key in thinking:
        if key not in ("type", "budget_tokens"):
            return _extra(f"thinking.enabled.{key}")
    budget = thinking.get("budget_tokens")
    if not isinstance(budget, int) or isinstance(budget, bool):
        return "thinking.enabled.budget_tokens: Field required"
    if budget < 1024:
        return "thinking.enabled.budget_tokens: Input should be greater than or equal to 1024"
    if isinstance(body.get("max_tokens"), int) and budget >= body["max_tokens"]:
        return "`max_tokens` must be greater than `thinking.budget_tokens`."
    return None


def check_sampling(body: dict, rules: BedrockRules) -> str | None:
    """With thinking on: temperature 1 or absent, no top_k, top_p >= 0.95 or absent."""
    if not _thinking_on(body):
        return None
    if body.get("temperature", 1) != 1:
        return "`temperature` may only be set to 1 when thinking is enabled."
    if "top_k" in body:
        return "`top_k` may not be set when thinking is enabled."
    if body.get("top_p", 1) < 0.95:
        return "`top_p` must be greater than or equal to 0.95 or unset when thinking is enabled."
    return None


def check_thinking_with_tools(body: dict, rules: BedrockRules) -> str | None:
    """With ``enabled`` thinking: no forced tool_choice, and a final assistant turn that
    calls tools starts with its thinking block (Anthropic's wording)."""
    thinking = body.get("thinking")
    if not isinstance(thinking, dict) or thinking.get("type") != "enabled":
        return None
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        return "Thinking may not be enabled when tool_choice forces tool use."
    for message in reversed(body.get("messages") or []):
        if isinstance(message, dict) and message.get("role") == "assistant":
            content = message.get("content")
            if isinstance(content, list) and any(
                    isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
                first = content[0] if isinstance(content[0], dict) else {}
                if first.get("type") not in ("thinking", "redacted_thinking"):
                    return ("messages: Expected `thinking` or `redacted_thinking`, but found "
                            f"`{first.get('type')}`. When `thinking` is enabled, a final "
                            "`assistant` message must start with a thinking block (preceeding "
                            "the lastmost set of `tool_use` and `tool_result` blocks).")
            return None
    return None


#: The checks in the order they run; the first failure answers the request.
BEDROCK_CHECKS: list[Callable[[dict, BedrockRules], str | None]] = [
    check_envelope,
    check_fields,
    check_max_tokens,
    check_betas,
    check_messages,
    check_content,
    check_tools,
    check_cache_control,
    check_thinking,
    check_thinking_with_tools,
    check_sampling,
]


def validate_bedrock(raw: bytes, rules: BedrockRules) -> dict:
    """Parse and validate an ``/invoke`` body; return it or raise :class:`Rejection`."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise Rejection(400, "Malformed input request, please reformat your input and try again.")
    if not isinstance(body, dict):
        raise Rejection(400, "Malformed input request: #: expected type: JSONObject, please reformat your input.")
    for check in BEDROCK_CHECKS:
        try:
            message = check(body, rules)
        except Rejection:
            raise
        except Exception:  # malformed nesting the checks did not foresee
            message = "The provided request is not valid"
        if message:
            raise Rejection(400, message)
    return body


# --------------------------------------------------------------------------------------------
# The scripted "model"
# --------------------------------------------------------------------------------------------


def _text_of(content: Any) -> str:
    """Plain text of a string or a list of content blocks."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(b.get("text", "") for b in content if isinstance(b, dict) and b.get("type") == "text")
    return ""


def _is_reminder(block: dict) -> bool:
    return block.get("type") == "text" and str(block.get("text", "")).startswith("<system-reminder>")


def build_reply(body: dict, text_chunks: int, ids: Callable[[str], str], huge: bool = False) -> list[dict]:
    """The content blocks the fake model answers ``body`` with (non-streaming form).

    Last user content a tool_result → "Tool said: <first 200 chars>". Otherwise the last text block
    not starting with ``<system-reminder>``: if it asks to run something and a ``Bash`` tool exists,
    a short text plus a Bash tool call; else the greeting, padded to at least ``text_chunks``
    characters so it splits into that many deltas. ``huge`` → a Write call with ~1 MB of input.
    """
    messages = [m for m in body.get("messages") or [] if isinstance(m, dict)]
    user = next((m for m in reversed(messages) if m.get("role") == "user"), {})
    content = user.get("content")
    blocks = [b for b in content if isinstance(b, dict)] if isinstance(content, list) else []
    tool_names = {t.get("name") for t in body.get("tools") or [] if isinstance(t, dict)}

    if huge:
        name = "Write" if "Write" in tool_names or not tool_names else sorted(n for n in tool_names if n)[0]
        payload = {"file_path": "/tmp/fake-huge.txt", "content": "A" * HUGE_DELTA_BYTES}
        return [
            {"type": "text", "text": "Writing a big file."},
            {"type": "tool_use", "id": ids("toolu"), "name": name, "input": payload},
        ]
    relevant = [b for b in blocks if not _is_reminder(b)]
    if relevant and relevant[-1].get("type") == "tool_result":
        return [{"type": "text", "text": "Tool said: " + _text_of(relevant[-1].get("content"))[:200]}]

    if isinstance(content, str):
        prompt = content
    else:
        prompt = next((b.get("text", "") for b in reversed(relevant) if b.get("type") == "text"), "")
    if "Bash" in tool_names and any(trigger in prompt.lower() for trigger in TOOL_TRIGGERS):
        return [
            {"type": "text", "text": "I'll run a shell command."},
            {
                "type": "tool_use",
                "id": ids("toolu"),
                "name": "Bash",
                "input": {"command": "echo fake-tool-ok", "description": "Echo a marker"},
            },
        ]
    text = DEFAULT_REPLY
    while len(text) < text_chunks:
        text += PADDING_TEXT
    return [{"type": "text", "text": text}]


def reply_blocks_from(reply: str | list[dict], ids: Callable[[str], str]) -> list[dict]:
    """Normalise a scripted ``Step.reply`` into content blocks (tool_use ids filled in)."""
    if isinstance(reply, str):
        return [{"type": "text", "text": reply}]
    blocks = [dict(b) for b in reply]
    for block in blocks:
        if block.get("type") == "tool_use":
            block.setdefault("id", ids("toolu"))
            block.setdefault("input", {})
    return blocks


def thinking_block(signature: str) -> dict:
    """The thinking block emitted when the request enables thinking."""
    return {"type": "thinking", "thinking": THINKING_TEXT, "signature": signature}


def split_text(text: str, parts: int) -> list[str]:
    """Split ``text`` into ``min(parts, len(text))`` nearly equal, non-empty pieces."""
    parts = max(1, min(parts, len(text)))
    bounds = [round(i * len(text) / parts) for i in range(parts + 1)]
    return [text[a:b] for a, b in zip(bounds, bounds[1:])]


def split_json(text: str) -> list[str]:
    """Split tool-input JSON at odd places (mid-key, mid-string), as Bedrock does."""
    if len(text) > 100_000:  # the huge event: one delta
        return [text]
    sizes = itertools.cycle((1, 5, 9, 3, 7))
    pieces, pos = [], 0
    while pos < len(text):
        size = next(sizes)
        pieces.append(text[pos : pos + size])
        pos += size
    return pieces


def _tokens(text: str) -> int:
    return max(1, len(text) // 4)


def output_tokens(blocks: list[dict]) -> int:
    """A rough output-token count of the reply."""
    size = 0
    for b in blocks:
        size += len(b.get("text", "")) + len(b.get("thinking", ""))
        if b.get("type") == "tool_use":
            size += len(json.dumps(b.get("input", {})))
    return _tokens("x" * size)


def usage_for(raw: bytes) -> dict:
    """Input usage of a request: ~len(body)/4 tokens, half of it 'cached' when cache_control is present."""
    total = max(1, len(raw) // 4)
    cached = total // 2 if b'"cache_control"' in raw else 0
    return {
        "input_tokens": total - cached,
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def stop_reason_of(blocks: list[dict]) -> str:
    return "tool_use" if any(b.get("type") == "tool_use" for b in blocks) else "end_turn"


def message_json(msg_id: str, model_id: str, blocks: list[dict], usage: dict) -> dict:
    """The non-streaming ``/invoke`` answer (spec §6.2)."""
    return {
        "id": msg_id,
        "type": "message",
        "role": "assistant",
        "model": model_id,
        "content": blocks,
        "stop_reason": stop_reason_of(blocks),
        "stop_sequence": None,
        "usage": {**usage, "output_tokens": output_tokens(blocks)},
    }


def stream_events(msg_id: str, model_id: str, blocks: list[dict], usage: dict, text_chunks: int,
                  metrics: Callable[[], dict]) -> Iterator[dict]:
    """The Anthropic events of a Bedrock stream (spec §6.3) for ``blocks``.

    ``metrics()`` is called when ``message_stop`` is built, so latencies are measured then.
    """
    out = output_tokens(blocks)
    yield {
        "type": "message_start",
        "message": {
            "id": msg_id, "type": "message", "role": "assistant", "model": model_id, "content": [],
            "stop_reason": None, "stop_sequence": None, "usage": {**usage, "output_tokens": 1},
        },
    }
    for index, block in enumerate(blocks):
        kind = block.get("type")
        if kind == "thinking":
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "thinking", "thinking": ""}}
            for piece in split_text(block["thinking"], 2):
                yield _delta(index, {"type": "thinking_delta", "thinking": piece})
            yield _delta(index, {"type": "signature_delta", "signature": block["signature"]})
        elif kind == "tool_use":
            start = {"type": "tool_use", "id": block["id"], "name": block["name"], "input": {}}
            yield {"type": "content_block_start", "index": index, "content_block": start}
            for piece in split_json(json.dumps(block.get("input", {}), separators=(",", ":"))):
                yield _delta(index, {"type": "input_json_delta", "partial_json": piece})
        elif kind == "text":
            yield {"type": "content_block_start", "index": index, "content_block": {"type": "text", "text": ""}}
            for piece in split_text(block["text"], text_chunks):
                yield _delta(index, {"type": "text_delta", "text": piece})
        else:  # e.g. redacted_thinking arrives whole
            yield {"type": "content_block_start", "index": index, "content_block": block}
        yield {"type": "content_block_stop", "index": index}
    yield {
        "type": "message_delta",
        "delta": {"stop_reason": stop_reason_of(blocks), "stop_sequence": None},
        "usage": {"output_tokens": out},
    }
    yield {"type": "message_stop", "amazon-bedrock-invocationMetrics": {**metrics(), "outputTokenCount": out}}


def _delta(index: int, delta: dict) -> dict:
    return {"type": "content_block_delta", "index": index, "delta": delta}


# --------------------------------------------------------------------------------------------
# Azure OpenAI (spec §8): request rules, the answer, the chunk stream, embeddings
# --------------------------------------------------------------------------------------------

AZURE_API_VERSION_RE = re.compile(r"^\d{4}-\d{2}-\d{2}(-preview)?$")
#: SAP model names of reasoning models (o-series, gpt-5*): no max_tokens, default sampling only.
AZURE_REASONING_PREFIXES = ("o1", "o3", "o4-", "gpt-5")
AZURE_ROLES = ("system", "developer", "user", "assistant", "tool")
#: Content part types per role (a string content is always fine).
AZURE_PART_TYPES = {
    "system": ("text",),
    "developer": ("text",),
    "user": ("text", "image_url", "input_audio", "file"),
    "assistant": ("text", "refusal"),
    "tool": ("text",),
}
AZURE_CHAT_KEYS = frozenset(
    {
        "messages", "model", "max_tokens", "max_completion_tokens", "temperature", "top_p", "n",
        "stream", "stream_options", "stop", "presence_penalty", "frequency_penalty", "logit_bias",
        "logprobs", "top_logprobs", "user", "tools", "tool_choice", "parallel_tool_calls",
        "response_format", "seed", "reasoning_effort", "metadata", "store", "service_tier",
        "prediction", "modalities", "audio", "verbosity", "prompt_cache_key", "safety_identifier",
        "data_sources", "user_security_context", "functions", "function_call",
    }
)
#: Sampling parameters a reasoning model accepts only at their default value.
AZURE_REASONING_DEFAULTS = {"temperature": 1, "top_p": 1, "presence_penalty": 0, "frequency_penalty": 0}
AZURE_REASONING_UNSUPPORTED = ("logprobs", "top_logprobs", "logit_bias")
AZURE_REASONING_EFFORTS = ("none", "minimal", "low", "medium", "high")
#: Hidden reasoning tokens a reasoning model spends per ``reasoning_effort`` (default medium).
REASONING_TOKENS = {"none": 0, "minimal": 0, "low": 16, "medium": 64, "high": 256}
#: Output-token maximum per SAP model name prefix (longest prefix wins); others 128000.
AZURE_MAX_COMPLETION_TOKENS = {
    "gpt-4o": 16384, "gpt-4.1": 32768, "gpt-5": 128000, "o1": 100000, "o3": 100000, "o4-": 100000,
}
AZURE_FALLBACK_MAX_COMPLETION = 128000
AZURE_STREAM_OPTION_KEYS = frozenset({"include_usage", "include_obfuscation"})
AZURE_TOOL_CHOICES = ("none", "auto", "required")
MAX_TOOL_CALL_ID = 40
OPENAI_FUNCTION_NAME_RE = re.compile(r"^[a-zA-Z0-9_-]{1,64}$")
OPERATION_URL = "https://go.microsoft.com/fwlink/?linkid=2197993"

#: Native vector size per embedding model; ``dimensions`` may shorten the -3 models only.
EMBEDDING_DIMENSIONS = {"text-embedding-3-small": 1536, "text-embedding-3-large": 3072,
                        "text-embedding-ada-002": 1536}
EMBEDDING_KEYS = frozenset({"input", "model", "encoding_format", "dimensions", "user", "input_type"})
MAX_EMBEDDING_INPUTS = 2048

_SAFE = {"filtered": False, "severity": "safe"}
#: Azure's content-filter verdict on a harmless completion / prompt.
CONTENT_FILTER_OK = {"hate": _SAFE, "self_harm": _SAFE, "sexual": _SAFE, "violence": _SAFE}
PROMPT_FILTER_OK = [{"prompt_index": 0, "content_filter_results": {
    **CONTENT_FILTER_OK, "jailbreak": {"filtered": False, "detected": False}}}]

#: Mid-stream Azure error events (``Step.error_event``); each value is the whole data line.
AZURE_ERROR_EVENT_LINES = {
    "server_error": json.dumps({"error": {
        "message": "The server had an error while processing your request. Sorry about that!",
        "type": "server_error", "param": None, "code": None}}),
    "rate_limit": json.dumps({"error": {
        "message": "Rate limit reached for requests. Please retry after 2 seconds.",
        "type": "requests", "param": None, "code": "429"}}),
    "content_filter": json.dumps({"error": {
        "message": "The response was filtered due to the prompt triggering Azure OpenAI's content management "
                   "policy. Please modify your prompt and retry.",
        "type": None, "param": "prompt", "code": "content_filter", "status": 400}}),
    "non_json": "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
}
AZURE_MALFORMED_LINE = '{"id":"chatcmpl-x","object":"chat.completion.chunk","choices":[{"index":0,"delta":{"conte'

#: Bedrock ``error_event`` names and their nearest Azure / Gemini event, so one script fits all families.
ERROR_EVENT_ALIASES = {
    "typed_overloaded": ("server_error", "unavailable"),
    "typed_error_message": ("rate_limit", "resource_exhausted"),
    "toplevel_message": ("server_error", "internal"),
    "toplevel_error": ("server_error", "internal"),
    "non_json": ("non_json", "non_json"),
}


class ApiRejection(Exception):
    """A request rejected with ``status`` and a whole JSON ``payload`` (Azure and Google shapes)."""

    def __init__(self, status: int, payload: dict):
        super().__init__(json.dumps(payload))
        self.status = status
        self.payload = payload


def azure_error(message: str, param: str | None = None, code: str | None = None,
                kind: str | None = "invalid_request_error") -> dict:
    """Azure OpenAI's error body ``{"error": {message, type, param, code}}`` (spec §8.5)."""
    return {"error": {"message": message, "type": kind, "param": param, "code": code}}


def azure_is_reasoning(model_name: str) -> bool:
    return model_name.startswith(AZURE_REASONING_PREFIXES)


def azure_max_completion_tokens(model_name: str) -> int:
    matches = [p for p in AZURE_MAX_COMPLETION_TOKENS if model_name.startswith(p)]
    return AZURE_MAX_COMPLETION_TOKENS[max(matches, key=len)] if matches else AZURE_FALLBACK_MAX_COMPLETION


def _json_type(value: Any) -> str:
    """OpenAI's name for the JSON type of ``value`` in "expected ..., but got ..." messages."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, (int, float)):
        return "a number"
    if isinstance(value, str):
        return "a string"
    return "an array" if isinstance(value, list) else "an object"


def _missing(path: str) -> dict:
    return azure_error(f"Missing required parameter: '{path}'.", path, "missing_required_parameter")


def _invalid_type(path: str, expected: str, value: Any) -> dict:
    return azure_error(f"Invalid type for '{path}': expected {expected}, but got {_json_type(value)} instead.",
                       path, "invalid_type")


def _invalid_value(path: str, value: Any, allowed: Iterable[str]) -> dict:
    allowed = [f"'{a}'" for a in allowed]
    listed = allowed[0] if len(allowed) == 1 else ", ".join(allowed[:-1]) + f", and {allowed[-1]}"
    return azure_error(f"Invalid value: '{value}'. Supported values are: {listed}.", path, "invalid_value")


def _empty_array(path: str) -> dict:
    return azure_error(f"Invalid '{path}': empty array. Expected an array with minimum length 1, but got an "
                       "empty array instead.", path, "empty_array")


@dataclasses.dataclass
class AzureRules:
    """What the chat validator enforces for one deployment."""

    model_name: str

    @property
    def reasoning(self) -> bool:
        return azure_is_reasoning(self.model_name)


def check_chat_keys(body: dict, rules: AzureRules) -> dict | None:
    """Unknown top-level parameters, e.g. a Responses-API ``reasoning`` object."""
    for key in body:
        if key not in AZURE_CHAT_KEYS:
            return azure_error(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    return None


def _check_content(path: str, role: str, content: Any) -> dict | None:
    """``content``: a string, or a non-empty list of typed parts allowed for the role."""
    if isinstance(content, str):
        return None
    if not isinstance(content, list):
        return _invalid_type(path, "one of a string or array of objects", content)
    if not content:
        return _empty_array(path)
    for j, part in enumerate(content):
        if not isinstance(part, dict):
            return _invalid_type(f"{path}[{j}]", "an object", part)
        if part.get("type") not in AZURE_PART_TYPES[role]:
            return _invalid_value(f"{path}[{j}].type", part.get("type"), AZURE_PART_TYPES[role])
        if part["type"] == "text" and not isinstance(part.get("text"), str):
            return _missing(f"{path}[{j}].text") if "text" not in part else _invalid_type(
                f"{path}[{j}].text", "a string", part["text"])
    return None


def _check_tool_calls(path: str, calls: Any) -> dict | None:
    """An assistant's ``tool_calls``: ids of at most 40 characters, function name and string arguments."""
    if not isinstance(calls, list):
        return _invalid_type(path, "an array", calls)
    if not calls:
        return _empty_array(path)
    for j, call in enumerate(calls):
        at = f"{path}[{j}]"
        if not isinstance(call, dict):
            return _invalid_type(at, "an object", call)
        for key in ("id", "type", "function"):
            if key not in call:
                return _missing(f"{at}.{key}")
        if not isinstance(call["id"], str):
            return _invalid_type(f"{at}.id", "a string", call["id"])
        if len(call["id"]) > MAX_TOOL_CALL_ID:
            return azure_error(
                f"Invalid '{at}.id': string too long. Expected a string with maximum length {MAX_TOOL_CALL_ID}, "
                f"but got a string with length {len(call['id'])} instead.", f"{at}.id", "string_above_max_length")
        if call["type"] != "function":
            return _invalid_value(f"{at}.type", call["type"], ("function",))
        function = call["function"]
        if not isinstance(function, dict):
            return _invalid_type(f"{at}.function", "an object", function)
        for key in ("name", "arguments"):
            if key not in function:
                return _missing(f"{at}.function.{key}")
            if not isinstance(function[key], str):
                return _invalid_type(f"{at}.function.{key}", "a string", function[key])
    return None


def _check_chat_message(i: int, message: Any) -> dict | None:
    path = f"messages[{i}]"
    if not isinstance(message, dict):
        return _invalid_type(path, "an object", message)
    role = message.get("role")
    if role is None:
        return _missing(f"{path}.role")
    if role not in AZURE_ROLES:
        return _invalid_value(f"{path}.role", role, AZURE_ROLES)
    content = message.get("content")
    if role == "assistant":
        if content is None and not message.get("tool_calls") and not message.get("refusal"):
            return _missing(f"{path}.content")
        if "tool_calls" in message and message["tool_calls"] is not None:
            problem = _check_tool_calls(f"{path}.tool_calls", message["tool_calls"])
            if problem:
                return problem
        return None if content is None else _check_content(f"{path}.content", role, content)
    if content is None:
        return _missing(f"{path}.content")
    if role == "tool":
        if "tool_call_id" not in message:
            return _missing(f"{path}.tool_call_id")
        if not isinstance(message["tool_call_id"], str):
            return _invalid_type(f"{path}.tool_call_id", "a string", message["tool_call_id"])
    return _check_content(f"{path}.content", role, content)


def _check_tool_sequence(messages: list[dict]) -> dict | None:
    """Tool messages directly follow the assistant message whose ``tool_calls`` they answer, all of them."""
    pending: list[str] | None = None  # the ids the current run of tool messages must answer
    asked_at = -1
    answered: set[str] = set()

    def unanswered() -> dict | None:
        missing = [c for c in pending or [] if c not in answered]
        if not missing:
            return None
        return azure_error(
            "An assistant message with 'tool_calls' must be followed by tool messages responding to each "
            f"'tool_call_id'. The following tool_call_ids did not have response messages: {', '.join(missing)}",
            f"messages.[{asked_at}].role", None)

    for i, message in enumerate(messages):
        if message["role"] == "tool":
            if pending is None:
                return azure_error("Invalid parameter: messages with role 'tool' must be a response to a "
                                   "preceeding message with 'tool_calls'.", f"messages.[{i}].role", None)
            call_id = message["tool_call_id"]
            if call_id not in pending:
                return azure_error(f"Invalid parameter: 'tool_call_id' of '{call_id}' not found in 'tool_calls' "
                                   "of previous message.", f"messages.[{i}].tool_call_id", None)
            answered.add(call_id)
            continue
        problem = unanswered()
        if problem:
            return problem
        pending, answered = None, set()
        if message["role"] == "assistant" and message.get("tool_calls"):
            pending, asked_at = [c["id"] for c in message["tool_calls"]], i
    return unanswered()


def check_chat_messages(body: dict, rules: AzureRules) -> dict | None:
    """Roles, content shapes, tool call ids and the tool-message order."""
    messages = body.get("messages")
    if messages is None:
        return _missing("messages")
    if not isinstance(messages, list):
        return _invalid_type("messages", "an array", messages)
    if not messages:
        return _empty_array("messages")
    for i, message in enumerate(messages):
        problem = _check_chat_message(i, message)
        if problem:
            return problem
    return _check_tool_sequence(messages)


def check_chat_tools(body: dict, rules: AzureRules) -> dict | None:
    """Function tools with valid names; tool_choice and parallel_tool_calls only with tools."""
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            return _invalid_type("tools", "an array", tools)
        if not tools:
            return _empty_array("tools")
        for n, tool in enumerate(tools):
            if not isinstance(tool, dict):
                return _invalid_type(f"tools[{n}]", "an object", tool)
            if tool.get("type") != "function":
                return _invalid_value(f"tools[{n}].type", tool.get("type"), ("function",))
            function = tool.get("function")
            if not isinstance(function, dict):
                return _missing(f"tools[{n}].function")
            name = function.get("name")
            if not isinstance(name, str):
                return _missing(f"tools[{n}].function.name")
            if not OPENAI_FUNCTION_NAME_RE.match(name):
                return azure_error(f"Invalid 'tools[{n}].function.name': string does not match pattern. Expected "
                                   "a string that matches the pattern '^[a-zA-Z0-9_-]+$'.",
                                   f"tools[{n}].function.name", "invalid_value")
            if "parameters" in function and not isinstance(function["parameters"], dict):
                return _invalid_type(f"tools[{n}].function.parameters", "an object", function["parameters"])
    for key in ("tool_choice", "parallel_tool_calls"):
        if key in body and not tools:
            return azure_error(f"Invalid value for '{key}': '{key}' is only allowed when 'tools' are specified.",
                               key, None)
    choice = body.get("tool_choice")
    if isinstance(choice, str) and choice not in AZURE_TOOL_CHOICES:
        return _invalid_value("tool_choice", choice, AZURE_TOOL_CHOICES)
    if isinstance(choice, dict):
        name = (choice.get("function") or {}).get("name")
        if name not in {(t.get("function") or {}).get("name") for t in tools}:
            return azure_error(f"Tool choice 'function' with name '{name}' not found in 'tools'.", "tool_choice", None)
    return None


def check_chat_max_tokens(body: dict, rules: AzureRules) -> dict | None:
    """Reasoning models refuse ``max_tokens``; both limits are ints in [1, model maximum], not both set."""
    if rules.reasoning and body.get("max_tokens") is not None:
        return azure_error("Unsupported parameter: 'max_tokens' is not supported with this model. Use "
                           "'max_completion_tokens' instead.", "max_tokens", "unsupported_parameter")
    if body.get("max_tokens") is not None and body.get("max_completion_tokens") is not None:
        return azure_error("Setting 'max_tokens' and 'max_completion_tokens' at the same time is not supported.",
                           "max_tokens", None)
    limit = azure_max_completion_tokens(rules.model_name)
    for key in ("max_tokens", "max_completion_tokens"):
        value = body.get(key)
        if value is None:
            continue
        if not isinstance(value, int) or isinstance(value, bool):
            return _invalid_type(key, "an integer", value)
        if value < 1:
            return azure_error(f"Invalid '{key}': integer below minimum value. Expected a value >= 1, but got "
                               f"{value} instead.", key, "integer_below_min_value")
        if value > limit:
            return azure_error(f"{key} is too large: {value}. This model supports at most {limit} completion "
                               f"tokens, whereas you provided {value}.", key, "invalid_value")
    return None


def check_chat_sampling(body: dict, rules: AzureRules) -> dict | None:
    """Reasoning models: default sampling only, no logprobs/logit_bias, a known reasoning_effort."""
    if not rules.reasoning:
        if "reasoning_effort" in body:
            return azure_error("Unsupported parameter: 'reasoning_effort' is not supported with this model.",
                               "reasoning_effort", "unsupported_parameter")
        return None
    for key, default in AZURE_REASONING_DEFAULTS.items():
        if key in body and body[key] != default:
            return azure_error(f"Unsupported value: '{key}' does not support {json.dumps(body[key])} with this "
                               f"model. Only the default ({default}) value is supported.", key, "unsupported_value")
    for key in AZURE_REASONING_UNSUPPORTED:
        if body.get(key) not in (None, False, {}):
            return azure_error(f"Unsupported parameter: '{key}' is not supported with this model.", key,
                               "unsupported_parameter")
    effort = body.get("reasoning_effort")
    if effort is not None and effort not in AZURE_REASONING_EFFORTS:
        listed = ", ".join(f"'{e}'" for e in AZURE_REASONING_EFFORTS[:-1]) + f", and '{AZURE_REASONING_EFFORTS[-1]}'"
        return azure_error(f"Unsupported value: 'reasoning_effort' does not support '{effort}' with this model. "
                           f"Supported values are: {listed}.", "reasoning_effort", "unsupported_value")
    return None


def check_chat_stream(body: dict, rules: AzureRules) -> dict | None:
    """``stream`` is a boolean; ``stream_options`` only with ``stream: true`` and known keys."""
    stream = body.get("stream")
    if stream is not None and not isinstance(stream, bool):
        return _invalid_type("stream", "a boolean", stream)
    options = body.get("stream_options")
    if options is None:
        return None
    if not stream:
        return azure_error("The 'stream_options' parameter is only allowed when 'stream' is enabled.",
                           "stream_options", None)
    if not isinstance(options, dict):
        return _invalid_type("stream_options", "an object", options)
    for key in options:
        if key not in AZURE_STREAM_OPTION_KEYS:
            return azure_error(f"Unknown parameter: 'stream_options.{key}'.", f"stream_options.{key}",
                               "unknown_parameter")
    return None


#: The chat checks in the order they run; the first failure answers 400.
AZURE_CHAT_CHECKS: list[Callable[[dict, AzureRules], dict | None]] = [
    check_chat_keys,
    check_chat_messages,
    check_chat_tools,
    check_chat_max_tokens,
    check_chat_sampling,
    check_chat_stream,
]

_AZURE_BAD_JSON = azure_error(
    "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP "
    "library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)")


def parse_azure_body(raw: bytes) -> dict:
    """The JSON object of an Azure request, or :class:`ApiRejection` 400 in Azure's shape."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiRejection(400, _AZURE_BAD_JSON)
    if not isinstance(body, dict):
        raise ApiRejection(400, _invalid_type("body", "an object", body))
    return body


def validate_azure_chat(raw: bytes, rules: AzureRules) -> dict:
    """Parse and validate a chat/completions body; return it or raise :class:`ApiRejection`."""
    body = parse_azure_body(raw)
    for check in AZURE_CHAT_CHECKS:
        try:
            problem = check(body, rules)
        except Exception:  # malformed nesting the checks did not foresee
            problem = azure_error("The provided request is not valid")
        if problem:
            raise ApiRejection(400, problem)
    return body


def _chat_text(content: Any) -> str:
    """The text of an OpenAI message content (string or parts)."""
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "\n".join(p.get("text", "") for p in content if isinstance(p, dict) and p.get("type") == "text")
    return ""


def chat_as_anthropic(body: dict) -> dict:
    """The slice of an OpenAI chat body :func:`build_reply` reads, in Anthropic form.

    User text parts become text blocks, each run of ``tool`` messages one user turn of ``tool_result``
    blocks; tool names come from ``tools[].function.name``.
    """
    messages: list[dict] = []
    for message in body.get("messages") or []:
        if not isinstance(message, dict):
            continue
        role = message.get("role")
        if role == "tool":
            result = {"type": "tool_result", "tool_use_id": message.get("tool_call_id"),
                      "content": _chat_text(message.get("content"))}
            last = messages[-1] if messages else None
            if last and last["role"] == "user" and all(b["type"] == "tool_result" for b in last["content"]):
                last["content"].append(result)
            else:
                messages.append({"role": "user", "content": [result]})
        elif role in ("user", "assistant"):
            content = message.get("content")
            parts = content if isinstance(content, list) else [{"type": "text", "text": _chat_text(content)}]
            # one block per text part, so <system-reminder> parts stay apart from the prompt
            messages.append({"role": role, "content": [
                {"type": "text", "text": p["text"]} for p in parts
                if isinstance(p, dict) and p.get("type") == "text" and isinstance(p.get("text"), str) and p["text"]]})
    tools = [{"name": t["function"].get("name")} for t in body.get("tools") or []
             if isinstance(t, dict) and isinstance(t.get("function"), dict)]
    return {"messages": messages, "tools": tools}


def compact_json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"))


@dataclasses.dataclass
class ChatOutcome:
    """What an Azure chat model answers: text, tool calls, finish reason and output usage."""

    text: str
    tool_calls: list[dict]
    finish_reason: str
    completion_tokens: int
    reasoning_tokens: int


def prompt_usage(raw: bytes) -> tuple[int, int]:
    """``(prompt_tokens, cached_tokens)`` of a request: ~len(body)/4 tokens; from 1024 tokens on, half
    of it (in 128-token steps) counts as cached, as automatic prompt caching would report."""
    total = max(1, len(raw) // 4)
    cached = (total // 2) // 128 * 128 if total >= 1024 else 0
    return total, cached


HIDDEN_BLOCK_TYPES = ("thinking", "redacted_thinking")


def _visible_and_hidden(blocks: list[dict]) -> tuple[list[dict], list[dict]]:
    """The reply blocks split into answer blocks and thinking blocks."""
    return ([b for b in blocks if b.get("type") not in HIDDEN_BLOCK_TYPES],
            [b for b in blocks if b.get("type") in HIDDEN_BLOCK_TYPES])


def azure_outcome(blocks: list[dict], body: dict, reasoning_model: bool) -> ChatOutcome:
    """Map the reply blocks to an Azure answer; over the output limit → truncated text, ``length``.

    A reasoning model spends ``REASONING_TOKENS[reasoning_effort]`` hidden tokens (plus any scripted
    thinking block); they count toward ``max_completion_tokens`` before the visible text.
    """
    visible, hidden = _visible_and_hidden(blocks)
    text = "".join(b.get("text", "") for b in visible if b.get("type") == "text")
    calls = [{"id": b["id"], "type": "function",
              "function": {"name": b["name"], "arguments": compact_json(b.get("input", {}))}}
             for b in visible if b.get("type") == "tool_use"]
    reasoning = REASONING_TOKENS.get(body.get("reasoning_effort") or "medium", 64) if reasoning_model else 0
    if hidden:
        reasoning += output_tokens(hidden)
    answer = output_tokens(visible)
    limit = body.get("max_completion_tokens") or body.get("max_tokens")
    if isinstance(limit, int) and reasoning + answer > limit:
        room = max(0, limit - reasoning)
        return ChatOutcome(text[: room * 4], [], "length", limit, min(reasoning, limit))
    return ChatOutcome(text, calls, "tool_calls" if calls else "stop", reasoning + answer, reasoning)


def azure_usage(prompt_tokens: int, cached_tokens: int, outcome: ChatOutcome) -> dict:
    return {
        "prompt_tokens": prompt_tokens,
        "completion_tokens": outcome.completion_tokens,
        "total_tokens": prompt_tokens + outcome.completion_tokens,
        "prompt_tokens_details": {"audio_tokens": 0, "cached_tokens": cached_tokens},
        "completion_tokens_details": {"accepted_prediction_tokens": 0, "audio_tokens": 0,
                                      "reasoning_tokens": outcome.reasoning_tokens,
                                      "rejected_prediction_tokens": 0},
    }


def azure_completion(completion_id: str, created: int, model: str, outcome: ChatOutcome, usage: dict) -> dict:
    """The non-streaming chat.completion (spec §8.2)."""
    content = outcome.text if outcome.text or not outcome.tool_calls else None
    message: dict = {"role": "assistant", "content": content, "refusal": None, "annotations": []}
    if outcome.tool_calls:
        message["tool_calls"] = outcome.tool_calls
    choice = {"index": 0, "finish_reason": outcome.finish_reason, "logprobs": None, "message": message,
              "content_filter_results": CONTENT_FILTER_OK if outcome.text else {}}
    return {"id": completion_id, "object": "chat.completion", "created": created, "model": model,
            "choices": [choice], "usage": usage, "prompt_filter_results": PROMPT_FILTER_OK}


def azure_stream_payloads(completion_id: str, created: int, model: str, outcome: ChatOutcome, usage: dict,
                          text_chunks: int, include_usage: bool) -> Iterator[str]:
    """The ``data:`` payloads of a chat stream (spec §8.3).

    A filter-only first chunk (empty id/model, no choices), the role chunk, ``text_chunks`` content
    deltas, per tool call a start chunk (id, name, empty arguments) then its arguments in several
    fragments, the finish chunk, the usage chunk (``choices: []``) only with ``include_usage`` (and
    then ``"usage": null`` on every other chunk), and one ``[DONE]``.
    """
    head = {"id": completion_id, "object": "chat.completion.chunk", "created": created, "model": model}

    def chunk(delta: dict, finish: str | None = None, filters: dict | None = None) -> str:
        choice = {"index": 0, "delta": delta, "finish_reason": finish, "logprobs": None,
                  "content_filter_results": filters or {}}
        return compact_json({**head, "choices": [choice], **({"usage": None} if include_usage else {})})

    yield compact_json({"id": "", "object": "", "created": 0, "model": "", "choices": [],
                        "prompt_filter_results": PROMPT_FILTER_OK})
    yield chunk({"role": "assistant", "content": "", "refusal": None})
    if outcome.text:
        for piece in split_text(outcome.text, text_chunks):
            yield chunk({"content": piece}, filters=CONTENT_FILTER_OK)
    for index, call in enumerate(outcome.tool_calls):
        name = call["function"]["name"]
        yield chunk({"tool_calls": [{"index": index, "id": call["id"], "type": "function",
                                     "function": {"name": name, "arguments": ""}}]})
        for piece in split_json(call["function"]["arguments"]):
            yield chunk({"tool_calls": [{"index": index, "function": {"arguments": piece}}]})
    yield chunk({}, finish=outcome.finish_reason)
    if include_usage:
        yield compact_json({**head, "choices": [], "usage": usage})
    yield "[DONE]"


def azure_status_error(status: int, retry_after: Any, operation: str, api_version: str) -> dict:
    """The body Azure answers a scripted error status with."""
    if status == 429:
        wait = retry_after if retry_after is not None else 60
        return {"error": {"code": "429", "message": (
            f"Requests to the {operation} Operation under Azure OpenAI API version {api_version} have exceeded "
            f"token rate limit of your current OpenAI S0 pricing tier. Please retry after {wait} seconds. Please "
            "go here: https://aka.ms/oai/quotaincrease if you would like to further increase the default rate "
            "limit.")}}
    if status == 408:
        return {"error": {"code": "Timeout", "message": "The operation was timeout."}}
    if status == 503:
        return {"error": {"code": "ServiceUnavailable", "message": (
            "The service is temporarily unable to process your request. Please try again later.")}}
    if status >= 500:
        return azure_error("The server had an error while processing your request. Sorry about that!",
                           kind="server_error")
    return azure_error(ERROR_MESSAGES.get(status, f"Fake error {status}"), code=str(status))


def operation_not_supported(operation: str, model_name: str) -> dict:
    """Azure's answer to a chat call on an embedding model and vice versa."""
    return {"error": {"code": "OperationNotSupported", "message": (
        f"The {operation} operation does not work with the specified model, {model_name}. Please choose different "
        f"model and try again. You can learn more about which models can be used with each operation here: "
        f"{OPERATION_URL}.")}}


# ---- embeddings (spec §8.4) ---------------------------------------------------------------------


def _embedding_inputs(value: Any) -> list[str | list[int]] | None:
    """The list of inputs (strings or token lists), or None when ``input`` has no valid shape."""
    if isinstance(value, str):
        return [value]
    if not isinstance(value, list) or not value:
        return None
    if all(isinstance(v, int) and not isinstance(v, bool) for v in value):
        return [value]
    if all(isinstance(v, str) for v in value):
        return list(value)
    if all(isinstance(v, list) and v and all(isinstance(t, int) for t in v) for v in value):
        return list(value)
    return None


def check_embeddings(body: dict, model_name: str, strict: bool) -> dict | None:
    """``input`` present and well-formed, ``encoding_format`` float/base64, ``dimensions`` in range."""
    if strict:
        for key in body:
            if key not in EMBEDDING_KEYS:
                return azure_error(f"Unknown parameter: '{key}'.", key, "unknown_parameter")
    if "input" not in body:
        return _missing("input")
    inputs = _embedding_inputs(body["input"])
    if inputs is None or any(item == "" for item in inputs):
        return azure_error("'$.input' is invalid. Please check the API reference: "
                           "https://platform.openai.com/docs/api-reference.", "input", None)
    if len(inputs) > MAX_EMBEDDING_INPUTS:
        return azure_error(f"Too many inputs. The max number of inputs is {MAX_EMBEDDING_INPUTS}.", "input", None)
    encoding = body.get("encoding_format", "float")
    if encoding not in ("float", "base64"):
        return _invalid_value("encoding_format", encoding, ("float", "base64"))
    if body.get("dimensions") is not None:
        dims = body["dimensions"]
        if not model_name.startswith("text-embedding-3"):
            return azure_error("This model does not support specifying dimensions.", "dimensions", None)
        native = EMBEDDING_DIMENSIONS.get(model_name, 1536)
        if not isinstance(dims, int) or isinstance(dims, bool) or not 1 <= dims <= native:
            return azure_error(f"Invalid value for 'dimensions' = {dims}. Must be an integer between 1 and "
                               f"{native}.", "dimensions", "invalid_value")
    return None


def embedding_vector(item: str | list[int], dimensions: int) -> array.array:
    """A deterministic unit vector (float32) from SHA-256 of the input; shorter ``dimensions``
    keep the leading components, renormalised (as the -3 models shorten theirs)."""
    text = item if isinstance(item, str) else compact_json(item)
    values: list[float] = []
    block = 0
    while len(values) < dimensions:
        digest = hashlib.sha256(f"{block}:{text}".encode()).digest()
        values.extend(v / 2**31 for v in struct.unpack("<8i", digest))
        block += 1
    values = values[:dimensions]
    norm = math.sqrt(sum(v * v for v in values)) or 1.0
    return array.array("f", (v / norm for v in values))


def embedding_encoded(vector: array.array, encoding: str) -> list[float] | str:
    """``float``: the float32 values as JSON numbers; ``base64``: little-endian float32 bytes."""
    if encoding != "base64":
        return vector.tolist()
    if sys.byteorder != "little":
        vector = array.array("f", vector)
        vector.byteswap()
    return base64.b64encode(vector.tobytes()).decode()


def embeddings_answer(body: dict, model_name: str) -> dict:
    """The embeddings list (spec §8.4); usage ``prompt_tokens`` from the fake's ~4 chars/token estimate."""
    inputs = _embedding_inputs(body["input"]) or []
    dims = body.get("dimensions") or EMBEDDING_DIMENSIONS.get(model_name, 1536)
    encoding = body.get("encoding_format", "float")
    data = [{"object": "embedding", "index": i, "embedding": embedding_encoded(embedding_vector(item, dims), encoding)}
            for i, item in enumerate(inputs)]
    tokens = sum(_tokens(item) if isinstance(item, str) else len(item) for item in inputs)
    return {"object": "list", "data": data, "model": model_name,
            "usage": {"prompt_tokens": tokens, "total_tokens": tokens}}


# --------------------------------------------------------------------------------------------
# Gemini on Vertex (spec §9): request normalisation and rules, the answer, the SSE stream
# --------------------------------------------------------------------------------------------

#: ``models/<model>:<operation>`` after the deployment URL.
GEMINI_PATH_RE = re.compile(r"^models/([^/:]+):([A-Za-z]+)$")
GEMINI_ROLES = ("user", "model")
GEMINI_TOP_LEVEL_KEYS = frozenset(
    {"contents", "systemInstruction", "tools", "toolConfig", "generationConfig", "safetySettings",
     "cachedContent", "labels"}
)
GEMINI_CONTENT_KEYS = frozenset({"role", "parts"})
#: A part holds exactly one of these.
GEMINI_PART_DATA_KEYS = frozenset(
    {"text", "inlineData", "fileData", "functionCall", "functionResponse", "executableCode", "codeExecutionResult"}
)
GEMINI_PART_KEYS = GEMINI_PART_DATA_KEYS | {"thought", "thoughtSignature", "videoMetadata", "mediaResolution"}
GEMINI_FUNCTION_CALL_KEYS = frozenset({"name", "args"})
GEMINI_FUNCTION_RESPONSE_KEYS = frozenset({"name", "response"})  # no "id": AI Core refuses it (§9.1)
GEMINI_TOOL_KEYS = frozenset(
    {"functionDeclarations", "googleSearch", "googleSearchRetrieval", "codeExecution", "retrieval", "urlContext",
     "enterpriseWebSearch"}
)
GEMINI_DECLARATION_KEYS = frozenset(
    {"name", "description", "parameters", "parametersJsonSchema", "response", "responseJsonSchema", "behavior"}
)
#: The OpenAPI subset Vertex's ``Schema`` message has (§9.5); anything else is an unknown name.
GEMINI_SCHEMA_KEYS = frozenset(
    {"type", "format", "title", "description", "nullable", "default", "items", "minItems", "maxItems", "enum",
     "properties", "propertyOrdering", "required", "minProperties", "maxProperties", "minLength", "maxLength",
     "pattern", "example", "anyOf", "minimum", "maximum"}
)
GEMINI_SCHEMA_TYPES = frozenset({"STRING", "NUMBER", "INTEGER", "BOOLEAN", "ARRAY", "OBJECT", "NULL"})
GEMINI_GENERATION_KEYS = frozenset(
    {"temperature", "topP", "topK", "candidateCount", "maxOutputTokens", "stopSequences", "presencePenalty",
     "frequencyPenalty", "seed", "responseMimeType", "responseSchema", "responseJsonSchema", "responseModalities",
     "thinkingConfig", "responseLogprobs", "logprobs", "mediaResolution", "speechConfig", "audioTimestamp"}
)
GEMINI_THINKING_KEYS = frozenset({"thinkingBudget", "includeThoughts", "thinkingLevel"})
GEMINI_CALLING_MODES = ("AUTO", "ANY", "NONE", "VALIDATED")
#: Function names (§9.5): a letter or ``_``, then letters, digits, ``_``, ``.``, ``-``; 64 at most.
GEMINI_FUNCTION_NAME_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,63}$")
#: Values Google documents for skipping the thought-signature check.
SIGNATURE_BYPASS = frozenset({"skip_thought_signature_validator", "context_engineering_is_the_way_to_go"})
#: Hidden thought tokens per call when the model thinks (dynamic budget); ``thinkingLevel: low`` a quarter.
GEMINI_THOUGHT_TOKENS = 64
GEMINI_LEARN_MORE = "Learn more: https://cloud.google.com/vertex-ai/generative-ai/docs/model-reference/gemini"
GEMINI_STATUS_NAMES = {400: "INVALID_ARGUMENT", 401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND",
                       408: "DEADLINE_EXCEEDED", 409: "ABORTED", 413: "INVALID_ARGUMENT", 429: "RESOURCE_EXHAUSTED",
                       499: "CANCELLED", 500: "INTERNAL", 503: "UNAVAILABLE", 504: "DEADLINE_EXCEEDED"}
GEMINI_STATUS_MESSAGES = {
    400: "Request contains an invalid argument.",
    408: "Deadline exceeded.",
    413: "Request payload size exceeds the limit.",
    429: "Resource exhausted. Please try again later. Please refer to "
         "https://cloud.google.com/vertex-ai/generative-ai/docs/error-code-429 for more details.",
    500: "Internal error encountered.",
    503: "The model is overloaded. Please try again later.",
    504: "Deadline exceeded.",
}


def google_error(status: int, message: str) -> dict:
    """Google's error body ``{"error": {"code", "message", "status"}}`` (spec §9.6)."""
    return {"error": {"code": status, "message": message, "status": GEMINI_STATUS_NAMES.get(status, "UNKNOWN")}}


#: Mid-stream Gemini error events (``Step.error_event``); each value is the whole data line.
GEMINI_ERROR_EVENT_LINES = {
    "internal": json.dumps(google_error(500, GEMINI_STATUS_MESSAGES[500])),
    "unavailable": json.dumps(google_error(503, GEMINI_STATUS_MESSAGES[503])),
    "resource_exhausted": json.dumps(google_error(429, GEMINI_STATUS_MESSAGES[429])),
    "non_json": "upstream connect error or disconnect/reset before headers. reset reason: connection termination",
}
GEMINI_MALFORMED_LINE = '{"candidates": [{"content": {"role": "model","parts": [{"text": "Hel'


def gemini_thinks(model_name: str) -> bool:
    """Whether the model has a thinking mode (2.5 and 3 families)."""
    return model_name.startswith(("gemini-2.5", "gemini-3"))


def gemini_max_output_tokens(model_name: str) -> int:
    return 65536 if gemini_thinks(model_name) else 8192


def _camel(key: str) -> str:
    if key.startswith("_") or "_" not in key:
        return key
    head, *rest = key.split("_")
    return head + "".join(p[:1].upper() + p[1:] for p in rest)


def _snake(key: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", lambda m: "_" + m.group(1).lower(), key)


def _camel_keys(node: Any, nested: dict[str, Callable[[Any], Any]] | None = None) -> Any:
    """A copy of a dict with camelCase keys; values of the ``nested`` keys pass through their function."""
    if not isinstance(node, dict):
        return node
    nested = nested or {}
    out = {}
    for key, value in node.items():
        key = _camel(key)
        out[key] = nested[key](value) if key in nested else value
    return out


def _normalize_schema(schema: Any) -> Any:
    if not isinstance(schema, dict):
        return schema
    return _camel_keys(schema, {
        "properties": lambda p: {k: _normalize_schema(v) for k, v in p.items()} if isinstance(p, dict) else p,
        "items": _normalize_schema,
        "anyOf": lambda xs: [_normalize_schema(x) for x in xs] if isinstance(xs, list) else xs,
    })


def _normalize_part(part: Any) -> Any:
    return _camel_keys(part, {"functionCall": _camel_keys, "functionResponse": _camel_keys,
                              "inlineData": _camel_keys, "fileData": _camel_keys})


def _normalize_content(content: Any) -> Any:
    def parts(value: Any) -> Any:
        value = [value] if isinstance(value, dict) else value
        return [_normalize_part(p) for p in value] if isinstance(value, list) else value
    return _camel_keys(content, {"parts": parts})


def _normalize_tool(tool: Any) -> Any:
    def declarations(value: Any) -> Any:
        if not isinstance(value, list):
            return value
        return [_camel_keys(d, {"parameters": _normalize_schema, "response": _normalize_schema}) for d in value]
    return _camel_keys(tool, {"functionDeclarations": declarations})


def normalize_gemini(body: dict) -> dict:
    """The request in camelCase with list ``parts`` (SAP's examples use snake_case and single-object
    parts; both are accepted). Function arguments, responses and property names are left alone."""
    return _camel_keys(body, {
        "contents": lambda cs: [_normalize_content(c) for c in cs] if isinstance(cs, list) else cs,
        "systemInstruction": _normalize_content,
        "tools": lambda ts: [_normalize_tool(t) for t in ts] if isinstance(ts, list) else ts,
        "generationConfig": lambda g: _camel_keys(g, {"thinkingConfig": _camel_keys,
                                                      "responseSchema": _normalize_schema}),
        "toolConfig": lambda t: _camel_keys(t, {"functionCallingConfig": _camel_keys}),
    })


def _unknown_name(name: str, at: str | None = None) -> str:
    where = f" at '{at}'" if at else ""
    return f'Invalid JSON payload received. Unknown name "{name}"{where}: Cannot find field.'


def _unknown_keys(node: dict, allowed: frozenset[str], at: str | None) -> list[str]:
    return [_unknown_name(k, at) for k in node if k not in allowed]


@dataclasses.dataclass
class GeminiRules:
    """What the Gemini validator enforces for one call."""

    model_name: str
    require_signature: bool
    known_signatures: set[str]
    schema_keys: frozenset[str]


def check_gemini_fields(body: dict, rules: GeminiRules) -> str | None:
    return "\n".join(_unknown_keys(body, GEMINI_TOP_LEVEL_KEYS, None)) or None


def _check_part(path: str, part: Any) -> str | None:
    if not isinstance(part, dict):
        return f"Invalid value at '{path}' (type.googleapis.com/google.cloud.aiplatform.v1.Part), {json.dumps(part)}"
    unknown = _unknown_keys(part, GEMINI_PART_KEYS, path)
    if unknown:
        return "\n".join(unknown)
    if len([k for k in part if k in GEMINI_PART_DATA_KEYS]) != 1:
        return f"* GenerateContentRequest.{path}.data: required oneof field 'data' must have one initialized field\n"
    if "text" in part and part["text"] == "" and "thoughtSignature" not in part:
        return f"Unable to submit request because it has an empty text parameter. Add a value to the parameter and " \
               f"try again. {GEMINI_LEARN_MORE}"
    for key, allowed in (("functionCall", GEMINI_FUNCTION_CALL_KEYS),
                         ("functionResponse", GEMINI_FUNCTION_RESPONSE_KEYS)):
        if key not in part:
            continue
        inner, at = part[key], f"{path}.{_snake(key)}"
        if not isinstance(inner, dict):
            return f"Invalid value at '{at}' (type.googleapis.com/google.cloud.aiplatform.v1.{key[0].upper()}{key[1:]})"
        unknown = _unknown_keys(inner, allowed, at)
        if unknown:
            return "\n".join(unknown)
        if not inner.get("name"):
            return f"* GenerateContentRequest.{at}.name: Name cannot be empty.\n"
        struct_key = "args" if key == "functionCall" else "response"
        if struct_key in inner and not isinstance(inner[struct_key], dict):
            return (f"Invalid value at '{at}.{struct_key}' (type.googleapis.com/google.protobuf.Struct), "
                    f"{json.dumps(inner[struct_key])}")
    return None


def _check_parts(path: str, content: Any) -> str | None:
    if not isinstance(content, dict):
        return f"Invalid value at '{path}' (type.googleapis.com/google.cloud.aiplatform.v1.Content)"
    unknown = _unknown_keys(content, GEMINI_CONTENT_KEYS, path)
    if unknown:
        return "\n".join(unknown)
    parts = content.get("parts")
    if not isinstance(parts, list) or not parts:
        return ("Unable to submit request because it must include at least one parts field, which describes the "
                f"prompt input. {GEMINI_LEARN_MORE}")
    for j, part in enumerate(parts):
        problem = _check_part(f"{path}.parts[{j}]", part)
        if problem:
            return problem
    return None


def check_gemini_contents(body: dict, rules: GeminiRules) -> str | None:
    """Non-empty ``contents`` of user/model turns with non-empty, well-formed parts."""
    contents = body.get("contents")
    if not contents:
        return "* GenerateContentRequest.contents: contents is not specified\n"
    if not isinstance(contents, list):
        return "Invalid value at 'contents' (type.googleapis.com/google.cloud.aiplatform.v1.Content)"
    for i, content in enumerate(contents):
        problem = _check_parts(f"contents[{i}]", content)
        if problem:
            return problem
        role = content.get("role")
        if role not in GEMINI_ROLES and not (role is None and len(contents) == 1):
            return "Please use a valid role: user, model."
    system = body.get("systemInstruction")
    return None if system is None else _check_parts("system_instruction", system)


def _calls_of(content: dict) -> list[dict]:
    return [p["functionCall"] for p in content.get("parts", []) if "functionCall" in p]


def _responses_of(content: dict) -> list[dict]:
    return [p["functionResponse"] for p in content.get("parts", []) if "functionResponse" in p]


def check_gemini_turns(body: dict, rules: GeminiRules) -> str | None:
    """A function-call turn follows a user or function-response turn; a function-response turn
    directly follows the call turn and answers each of its calls by name."""
    previous: dict | None = None
    for content in body["contents"]:
        calls, responses = _calls_of(content), _responses_of(content)
        if calls and (previous is None or previous.get("role") == "model"):
            return "Please ensure that function call turn comes immediately after a user turn or after a function " \
                   "response turn."
        if responses:
            asked = _calls_of(previous) if previous and previous.get("role") == "model" else []
            if not asked:
                return "Please ensure that function response turn comes immediately after a function call turn."
            if len(responses) != len(asked):
                return "Please ensure that the number of function response parts is equal to the number of " \
                       "function call parts of the function call turn."
            names = sorted({c["name"] for c in asked})
            for response in responses:
                if response["name"] not in names:
                    return (f"Function response name '{response['name']}' does not match any function call of the "
                            f"previous turn ({', '.join(names)}).")
        previous = content
    return None


def _current_turn(contents: list[dict]) -> list[tuple[int, dict]]:
    """The contents after the last user turn that carries text (the turn now being answered)."""
    start = 0
    for i, content in enumerate(contents):
        if content.get("role", "user") == "user" and any("text" in p for p in content.get("parts", [])):
            start = i
    return list(enumerate(contents))[start:]


def check_gemini_signatures(body: dict, rules: GeminiRules) -> str | None:
    """When required: the first functionCall part of each model step of the current turn carries a
    thoughtSignature this fake issued (or one of Google's documented bypass values)."""
    if not rules.require_signature:
        return None
    for i, content in _current_turn(body["contents"]):
        if content.get("role") != "model":
            continue
        parts = content.get("parts", [])
        first = next((j for j, p in enumerate(parts) if "functionCall" in p), None)
        if first is None:
            continue
        signature = parts[first].get("thoughtSignature")
        if not signature:
            return ("Function call is missing a thought_signature in functionCall parts. This is required for tools "
                    "to work correctly, and missing thought_signature may lead to degraded model performance. "
                    f"Additional data, function call `default_api:{parts[first]['functionCall']['name']}` , "
                    f"position {first + 1}. Please refer to https://ai.google.dev/gemini-api/docs/thought-signatures "
                    "for more details.")
        if signature not in rules.known_signatures and signature not in SIGNATURE_BYPASS:
            return f"Unable to submit request because Thought signature is not valid. {GEMINI_LEARN_MORE}"
    return None


def _schema_errors(schema: Any, path: str, allowed: frozenset[str]) -> list[str]:
    """Google's complaints about a declaration schema: unknown keywords, type lists, bad types/enums."""
    if not isinstance(schema, dict):
        return [f"Invalid value at '{path}' (type.googleapis.com/google.cloud.aiplatform.v1.Schema), "
                f"{json.dumps(schema)}"]
    errors = []
    for key, value in schema.items():
        if key not in allowed:
            errors.append(_unknown_name(key, path))
        elif key == "type" and isinstance(value, list):
            errors.append(f'Invalid JSON payload received. Unknown name "type" at \'{path}\': Proto field is not '
                          "repeating, cannot start list.")
        elif key == "type" and str(value).upper() not in GEMINI_SCHEMA_TYPES:
            errors.append(f"Invalid value at '{path}.type' (type.googleapis.com/google.cloud.aiplatform.v1.Type), "
                          f"{json.dumps(value)}")
        elif key == "enum" and isinstance(value, list):
            errors += [f"Invalid value at '{path}.enum[{n}]' (TYPE_STRING), {json.dumps(v)}"
                       for n, v in enumerate(value) if not isinstance(v, str)]
        elif key == "properties" and isinstance(value, dict):
            for n, sub in enumerate(value.values()):
                errors += _schema_errors(sub, f"{path}.properties[{n}].value", allowed)
        elif key == "items":
            errors += _schema_errors(value, f"{path}.items", allowed)
        elif key == "anyOf" and isinstance(value, list):
            for n, sub in enumerate(value):
                errors += _schema_errors(sub, f"{path}.any_of[{n}]", allowed)
    return errors


def check_gemini_tools(body: dict, rules: GeminiRules) -> str | None:
    """Known tool kinds; declarations with §9.5 names and schemas in Vertex's OpenAPI subset."""
    tools = body.get("tools")
    if tools is None:
        return None
    if not isinstance(tools, list):
        return "Invalid value at 'tools' (type.googleapis.com/google.cloud.aiplatform.v1.Tool)"
    errors: list[str] = []
    for t, tool in enumerate(tools):
        if not isinstance(tool, dict):
            return f"Invalid value at 'tools[{t}]' (type.googleapis.com/google.cloud.aiplatform.v1.Tool)"
        errors += _unknown_keys(tool, GEMINI_TOOL_KEYS, f"tools[{t}]")
        for d, declaration in enumerate(tool.get("functionDeclarations") or []):
            at = f"tools[{t}].function_declarations[{d}]"
            if not isinstance(declaration, dict):
                return f"Invalid value at '{at}' (type.googleapis.com/google.cloud.aiplatform.v1.FunctionDeclaration)"
            errors += _unknown_keys(declaration, GEMINI_DECLARATION_KEYS, at)
            name = declaration.get("name")
            if not isinstance(name, str) or not GEMINI_FUNCTION_NAME_RE.match(name):
                return (f"* GenerateContentRequest.{at}.name: Invalid function name. Must start with a letter or an "
                        "underscore. Must be a-z, A-Z, 0-9, or contain underscores, dots and dashes, with a maximum "
                        "length of 64.\n")
            if "parameters" in declaration:
                errors += _schema_errors(declaration["parameters"], f"{at}.parameters", rules.schema_keys)
    return "\n".join(errors) or None


def check_gemini_config(body: dict, rules: GeminiRules) -> str | None:
    """generationConfig (maxOutputTokens range, thinkingConfig per model) and toolConfig."""
    config = body.get("generationConfig") or {}
    if not isinstance(config, dict):
        return "Invalid value at 'generation_config' (type.googleapis.com/google.cloud.aiplatform.v1.GenerationConfig)"
    unknown = _unknown_keys(config, GEMINI_GENERATION_KEYS, "generation_config")
    if unknown:
        return "\n".join(unknown)
    limit = gemini_max_output_tokens(rules.model_name)
    max_out = config.get("maxOutputTokens")
    if max_out is not None and (not isinstance(max_out, int) or not 1 <= max_out <= limit):
        return (f"Unable to submit request because it has a maxOutputTokens value of {max_out} but the supported "
                f"range is from 1 (inclusive) to {limit + 1} (exclusive). Update the value and try again.")
    thinking = config.get("thinkingConfig")
    if thinking is not None:
        unknown = _unknown_keys(thinking, GEMINI_THINKING_KEYS, "generation_config.thinking_config")
        if unknown:
            return "\n".join(unknown)
        if not gemini_thinks(rules.model_name):
            return "Unable to submit request because thinking is not supported by this model."
        if thinking.get("thinkingBudget") == 0 and "pro" in rules.model_name:
            return "Budget 0 is invalid. This model only works in thinking mode."
    calling = (body.get("toolConfig") or {}).get("functionCallingConfig") or {}
    mode = calling.get("mode", "AUTO")
    if mode not in GEMINI_CALLING_MODES:
        return (f"Invalid value at 'tool_config.function_calling_config.mode' "
                f"(type.googleapis.com/google.cloud.aiplatform.v1.FunctionCallingConfig.Mode), {json.dumps(mode)}")
    if calling.get("allowedFunctionNames") and mode not in ("ANY", "VALIDATED"):
        return "* GenerateContentRequest.tool_config.function_calling_config.allowed_function_names: only allowed " \
               "when function calling mode is ANY or VALIDATED.\n"
    return None


#: The Gemini checks in the order they run; the first failure answers 400.
GEMINI_CHECKS: list[Callable[[dict, GeminiRules], str | None]] = [
    check_gemini_fields,
    check_gemini_contents,
    check_gemini_turns,
    check_gemini_signatures,
    check_gemini_tools,
    check_gemini_config,
]


def parse_gemini_body(raw: bytes) -> dict:
    """The normalised JSON object of a Gemini request, or :class:`ApiRejection` 400 in Google's shape."""
    try:
        body = json.loads(raw)
    except ValueError:
        raise ApiRejection(400, google_error(400, "Invalid JSON payload received. Unexpected token."))
    if not isinstance(body, dict):
        raise ApiRejection(400, google_error(400, "Invalid JSON payload received. Expected an object."))
    return normalize_gemini(body)


def validate_gemini(raw: bytes, rules: GeminiRules) -> dict:
    """Parse, normalise and validate a generateContent body; return it or raise :class:`ApiRejection`."""
    body = parse_gemini_body(raw)
    for check in GEMINI_CHECKS:
        try:
            message = check(body, rules)
        except Exception:  # malformed nesting the checks did not foresee
            message = GEMINI_STATUS_MESSAGES[400]
        if message:
            raise ApiRejection(400, google_error(400, message))
    return body


def _function_response_text(response: Any) -> str:
    """The text a tool returned: a lone string field (content/output/result), else the JSON."""
    if isinstance(response, dict):
        for key in ("content", "output", "result"):
            if isinstance(response.get(key), str):
                return response[key]
    return compact_json(response)


def gemini_as_anthropic(body: dict) -> dict:
    """The slice of a (normalised) Gemini body :func:`build_reply` reads, in Anthropic form."""
    messages = []
    for content in body.get("contents") or []:
        if not isinstance(content, dict):
            continue
        blocks = []
        for part in content.get("parts") or []:
            if not isinstance(part, dict):
                continue
            if isinstance(part.get("text"), str) and part["text"] and not part.get("thought"):
                blocks.append({"type": "text", "text": part["text"]})
            elif isinstance(part.get("functionResponse"), dict):
                blocks.append({"type": "tool_result",
                               "content": _function_response_text(part["functionResponse"].get("response"))})
        messages.append({"role": "assistant" if content.get("role") == "model" else "user", "content": blocks})
    tools = [{"name": d.get("name")} for t in body.get("tools") or [] if isinstance(t, dict)
             for d in t.get("functionDeclarations") or [] if isinstance(d, dict)]
    return {"messages": messages, "tools": tools}


@dataclasses.dataclass
class GeminiOutcome:
    """What a Gemini model answers: shown thoughts, text, whole function calls, finish reason, usage."""

    thoughts: str
    text: str
    calls: list[dict]
    finish_reason: str
    candidates_tokens: int
    thoughts_tokens: int
    signature: str | None


def gemini_thought_tokens(model_name: str, thinking: dict) -> int:
    """Hidden thought tokens: 0 without a thinking mode or with budget 0; else the dynamic amount,
    capped by a positive ``thinkingBudget``, a quarter with ``thinkingLevel: low``."""
    budget = thinking.get("thinkingBudget", -1)
    if not gemini_thinks(model_name) or budget == 0:
        return 0
    tokens = GEMINI_THOUGHT_TOKENS // 4 if str(thinking.get("thinkingLevel", "")).lower() == "low" \
        else GEMINI_THOUGHT_TOKENS
    return min(tokens, budget) if isinstance(budget, int) and budget > 0 else tokens


def gemini_outcome(blocks: list[dict], body: dict, model_name: str, signature: Callable[[], str],
                   signs_text: bool) -> GeminiOutcome:
    """Map the reply blocks to a Gemini answer; over ``maxOutputTokens`` (thoughts count) → MAX_TOKENS.

    A thinking model signs its first function call (``signature()`` issues one); ``signs_text``
    (gemini-3) signs a text-only answer too (the signature goes on its last text part).
    """
    config = body.get("generationConfig") if isinstance(body.get("generationConfig"), dict) else {}
    thinking = config.get("thinkingConfig") if isinstance(config.get("thinkingConfig"), dict) else {}
    visible, hidden = _visible_and_hidden(blocks)
    thoughts_tokens = gemini_thought_tokens(model_name, thinking) + (output_tokens(hidden) if hidden else 0)
    thoughts = ""
    if thinking.get("includeThoughts") and thoughts_tokens:
        thoughts = "\n".join(b.get("thinking", "") for b in hidden) or THINKING_TEXT
    text = "".join(b.get("text", "") for b in visible if b.get("type") == "text")
    calls = [{"name": b["name"], "args": b.get("input", {})} for b in visible if b.get("type") == "tool_use"]
    answer = output_tokens(visible)
    limit = config.get("maxOutputTokens")
    if isinstance(limit, int) and thoughts_tokens + answer > limit:
        room = max(0, limit - thoughts_tokens)
        text = text[: room * 4]
        return GeminiOutcome(thoughts, text, [], "MAX_TOKENS", _tokens(text) if text else 0,
                             min(thoughts_tokens, limit), None)
    signed = bool(thoughts_tokens) and (bool(calls) or (signs_text and bool(text)))
    return GeminiOutcome(thoughts, text, calls, "STOP", answer, thoughts_tokens, signature() if signed else None)


def gemini_usage(prompt_tokens: int, cached_tokens: int, candidates: int, thoughts: int, final: bool) -> dict:
    """``usageMetadata``; zero counts are left out, as proto3 JSON does. ``final`` adds the details."""
    usage: dict = {"promptTokenCount": prompt_tokens}
    if candidates:
        usage["candidatesTokenCount"] = candidates
    usage["totalTokenCount"] = prompt_tokens + candidates + thoughts
    if cached_tokens and final:
        usage["cachedContentTokenCount"] = cached_tokens
    if thoughts:
        usage["thoughtsTokenCount"] = thoughts
    if final:
        usage["trafficType"] = "ON_DEMAND"
        usage["promptTokensDetails"] = [{"modality": "TEXT", "tokenCount": prompt_tokens}]
        if candidates:
            usage["candidatesTokensDetails"] = [{"modality": "TEXT", "tokenCount": candidates}]
        if cached_tokens:
            usage["cacheTokensDetails"] = [{"modality": "TEXT", "tokenCount": cached_tokens}]
    return usage


def _call_parts(outcome: GeminiOutcome) -> list[dict]:
    parts = [{"functionCall": call} for call in outcome.calls]
    if parts and outcome.signature:
        parts[0]["thoughtSignature"] = outcome.signature
    return parts


def _candidate(parts: list[dict], finish: str | None) -> dict:
    """One candidate; no ``parts`` key when there are none (as Gemini sends a cut-off answer)."""
    content: dict = {"role": "model"}
    if parts:
        content["parts"] = parts
    candidate: dict = {"content": content}
    if finish:
        candidate["finishReason"] = finish
    candidate["index"] = 0
    return candidate


def gemini_response(meta: dict, outcome: GeminiOutcome, prompt_tokens: int, cached_tokens: int) -> dict:
    """The non-streaming GenerateContentResponse (spec §9.2). ``meta``: modelVersion, createTime, responseId."""
    parts: list[dict] = []
    if outcome.thoughts:
        parts.append({"text": outcome.thoughts, "thought": True})
    if outcome.text:
        parts.append({"text": outcome.text})
        if outcome.signature and not outcome.calls:
            parts[-1]["thoughtSignature"] = outcome.signature
    parts += _call_parts(outcome)
    usage = gemini_usage(prompt_tokens, cached_tokens, outcome.candidates_tokens, outcome.thoughts_tokens, True)
    return {"candidates": [_candidate(parts, outcome.finish_reason)], "usageMetadata": usage, **meta}


def gemini_stream_payloads(meta: dict, outcome: GeminiOutcome, prompt_tokens: int, cached_tokens: int,
                           text_chunks: int, trailing_usage: bool) -> Iterator[str]:
    """The ``data:`` payloads of a streamGenerateContent answer (spec §9.3).

    Each is a whole GenerateContentResponse with one delta: thought pieces (``thought: true``, when
    included), ``text_chunks`` text pieces, then all function calls whole in one chunk; usage is
    cumulative; the last chunk has ``finishReason`` and the final usage. ``trailing_usage`` adds a
    usage-only chunk without candidates after it.
    """
    pieces: list[tuple[list[dict], int, int]] = []  # (parts, candidates so far, thoughts so far)
    thought_pieces = split_text(outcome.thoughts, 2) if outcome.thoughts else []
    for n, piece in enumerate(thought_pieces):
        pieces.append(([{"text": piece, "thought": True}], 0, outcome.thoughts_tokens * (n + 1) // len(thought_pieces)))
    thoughts_so_far = outcome.thoughts_tokens
    text_pieces = split_text(outcome.text, text_chunks) if outcome.text else []
    text_share = outcome.candidates_tokens if not outcome.calls else _tokens(outcome.text)
    for n, piece in enumerate(text_pieces):
        pieces.append(([{"text": piece}], text_share * (n + 1) // len(text_pieces), thoughts_so_far))
    if outcome.signature and text_pieces and not outcome.calls:
        pieces[-1][0][0]["thoughtSignature"] = outcome.signature
    if outcome.calls:
        pieces.append((_call_parts(outcome), outcome.candidates_tokens, thoughts_so_far))
    if not pieces:
        pieces.append(([], 0, thoughts_so_far))
    dumps = functools.partial(json.dumps, separators=(",", ": "))
    final_usage = gemini_usage(prompt_tokens, cached_tokens, outcome.candidates_tokens, outcome.thoughts_tokens, True)
    for n, (parts, candidates, thoughts) in enumerate(pieces):
        last = n == len(pieces) - 1
        usage = final_usage if last else gemini_usage(prompt_tokens, cached_tokens, candidates, thoughts, False)
        candidate = _candidate(parts, outcome.finish_reason if last else None)
        yield dumps({"candidates": [candidate], "usageMetadata": usage, **meta})
    if trailing_usage:
        yield dumps({"usageMetadata": final_usage, **meta})


def gemini_status_error(status: int) -> dict:
    return google_error(status, GEMINI_STATUS_MESSAGES.get(status, f"Fake error {status}"))


def gemini_model_not_found(model: str) -> dict:
    return google_error(404, (
        f"Publisher Model `projects/fake-project/locations/europe-west4/publishers/google/models/{model}` was not "
        "found or your project does not have access to it. Please ensure you are using a valid model version. For "
        "more information, see: https://cloud.google.com/vertex-ai/generative-ai/docs/learn/model-versions"))


# --------------------------------------------------------------------------------------------
# SSE framing and chunking
# --------------------------------------------------------------------------------------------


def sse_line(data: str, crlf: bool = False) -> bytes:
    """One SSE event: ``data: <data>`` and a blank line."""
    nl = "\r\n" if crlf else "\n"
    return f"data: {data}{nl}{nl}".encode()


def json_array_pieces(events: Iterable[tuple[float, bytes]]) -> Iterator[tuple[float, bytes]]:
    """Timed SSE events re-framed as the pieces of one JSON array: ``[`` before the first
    object, ``,\\r\\n`` between objects, ``]`` after the last."""
    first = True
    delay = 0.0
    for delay, line in events:
        payload = line.decode().strip()
        payload = payload[len("data: "):] if payload.startswith("data: ") else payload
        yield delay, (("[" if first else ",\r\n") + payload).encode()
        first = False
    yield 0.0, (b"[]" if first else b"]")


def plan_payloads(payloads: Iterable[str], step: Step, error_line: str | None,
                  malformed_line: str) -> Iterator[str]:
    """The ``data:`` payloads of a stream after the step's error/EOF/malformed knobs.

    ``error_line`` (the step's error event in the family's shape, or None) replaces payload
    ``step.error_after_events`` and ends the stream; asked for after more payloads than the
    stream has, it comes last. ``malformed_line`` is the family's truncated JSON line.
    """
    for n, payload in enumerate(payloads):
        if error_line is not None and n == step.error_after_events:
            break
        if step.eof_after_events is not None and n == step.eof_after_events:
            return
        if step.malformed_line_after is not None and n == step.malformed_line_after:
            yield malformed_line
        yield payload
    if error_line is not None:
        yield error_line


def plan_lines(events: Iterable[dict], step: Step) -> Iterator[str]:
    """:func:`plan_payloads` for Bedrock events (dicts; error shapes of ``ERROR_EVENT_LINES``)."""
    error_line = ERROR_EVENT_LINES[step.error_event] if step.error_event else None
    payloads = (json.dumps(event, separators=(",", ":")) for event in events)
    return plan_payloads(payloads, step, error_line, MALFORMED_LINE)


def family_error_line(step: Step, table: dict[str, str], alias: int) -> str | None:
    """The step's mid-stream error line in a family's ``table``; Bedrock names map through
    ``ERROR_EVENT_ALIASES`` (``alias``: 0 Azure, 1 Gemini). Unknown names raise KeyError."""
    if not step.error_event:
        return None
    name = step.error_event
    if name not in table and name in ERROR_EVENT_ALIASES:
        name = ERROR_EVENT_ALIASES[name][alias]
    return table[name]


def chunk_segments(events: Iterable[tuple[float, bytes]], chunking: str | None,
                   rng: random.Random) -> Iterator[tuple[float, bytes]]:
    """Turn ``(delay_before, event_bytes)`` pairs into ``(delay_before, write)`` pairs.

    ``byte``: every byte is its own write. ``random``: the whole stream is cut at random sizes
    (1-97 bytes), so events split across writes and several share one; a write waits the largest
    delay of the events starting inside it (this one needs all events up front). Otherwise one
    write per event.
    """
    if chunking == "byte":
        for delay, data in events:
            for i in range(len(data)):
                yield (delay if i == 0 else 0.0), data[i : i + 1]
        return
    if chunking != "random":
        yield from events
        return
    events = list(events)
    stream = b"".join(data for _, data in events)
    starts: dict[int, float] = {}
    offset = 0
    for delay, data in events:
        starts[offset] = delay
        offset += len(data)
    pos = 0
    while pos < len(stream):
        end = min(len(stream), pos + rng.randint(1, 97))
        yield max((d for o, d in starts.items() if pos <= o < end), default=0.0), stream[pos:end]
        pos = end


# --------------------------------------------------------------------------------------------
# The server
# --------------------------------------------------------------------------------------------


class _QuietHandler(WSGIRequestHandler):
    """Werkzeug's request handler without the per-request access log."""

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        pass


def _json_response(status: int, payload: Any, headers: dict | None = None) -> Response:
    return Response(json.dumps(payload), status=status, mimetype="application/json", headers=headers)


def _error(status: int, message: str, headers: dict | None = None) -> Response:
    """A Bedrock-like error answer ``{"message": ...}``."""
    return _json_response(status, {"message": message}, headers)


def _google_json(status: int, payload: Any, headers: dict | None = None) -> Response:
    """JSON the way Google's REST front end writes it (two-space indent)."""
    return Response(json.dumps(payload, indent=2), status=status, mimetype="application/json", headers=headers)


def _rfc3339(seconds: float) -> str:
    """``2026-01-01T00:00:00.000000Z`` (Vertex's ``createTime``)."""
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(seconds)) + f".{int(seconds % 1 * 1_000_000):06d}Z"


@dataclasses.dataclass
class GeminiCall:
    """A validated Gemini call: its step, the answer and the response metadata."""

    step: Step
    outcome: GeminiOutcome
    prompt_tokens: int
    cached_tokens: int
    meta: dict


_INFERENCE_PATH_RE = re.compile(r"^/v2/inference/deployments/([^/]+)/")


class FakeAICore:
    """A fake SAP AI Core on ``127.0.0.1:<random port>``; see the module docstring.

    Knobs (plain attributes, change them at any time):

    * ``token_ttl`` — ``expires_in`` of new tokens (s); ``token_delay`` — seconds the token endpoint
      waits; ``idp_down`` — token endpoint answers 503.
    * ``strict`` — run Bedrock validation; ``reject_fields``, ``allowed_betas``, ``accept_ttl_1h``,
      ``model_max_tokens`` (dict SAP name → max) tune it.
    * ``stream_event_count`` — text_delta chunks per text block; ``stream_interval`` — seconds
      between events; ``first_token_delay`` — seconds before the first event;
      ``default_step`` — the :class:`Step` used when a deployment's script is empty.
    * ``clock`` — ``time.time``-like callable for Azure ``created`` and Gemini ``createTime``.
    * Gemini: ``gemini_schema_keys`` — the schema keywords declarations may use (add
      ``additionalProperties`` to emulate a newer model); ``gemini_sse_crlf`` — ``\\r\\n`` line
      endings (default, as Google's SSE); ``gemini_trailing_usage_chunk`` — a usage-only chunk
      after the last one; ``gemini_array_without_alt_sse`` — a stream asked for without
      ``?alt=sse`` is a JSON array (default, as Vertex); per deployment
      ``require_thought_signature`` (``add_deployment``).

    Records: ``requests`` (:class:`RecordedRequest`), ``token_calls``, ``open_streams`` (now),
    ``max_open_streams``, ``streams_started``, ``closed_streams`` (streams the client abandoned),
    ``converse_calls``.
    """

    def __init__(self, client_id: str = "sb-test!b1|aicore!b540", client_secret: str = "s3cr3t",
                 token_ttl: int = 43199):
        self.client_id = client_id
        self.client_secret = client_secret
        self.identity_zone_id = "0f1e2d3c-0000-1111-2222-333344445555"

        self.token_ttl = token_ttl
        self.token_delay = 0.0
        self.idp_down = False

        self.strict = True
        self.reject_fields: set[str] = set(DEFAULT_REJECT_FIELDS)
        self.allowed_betas: set[str] = set(DEFAULT_ALLOWED_BETAS)
        self.accept_ttl_1h = True
        self.model_max_tokens: dict[str, int] = dict(DEFAULT_MODEL_MAX_TOKENS)

        self.stream_event_count = 4
        self.stream_interval = 0.0
        self.first_token_delay = 0.0
        self.default_step = Step()
        self.clock: Callable[[], float] = time.time

        self.gemini_schema_keys: set[str] = set(GEMINI_SCHEMA_KEYS)
        self.gemini_sse_crlf = True
        self.gemini_array_without_alt_sse = True
        self.gemini_trailing_usage_chunk = False
        self._signatures: set[str] = set()

        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._token_counter = 0
        self._id_counter = 0
        self._deployments: dict[str, Deployment] = {}
        self._scripts: dict[str, collections.deque[Step]] = collections.defaultdict(collections.deque)
        self._reset_records()

        #: Handlers per model family and URL suffix (Gemini: the operation after ``models/<model>:``).
        self._families: dict[str, dict[str, Callable[[Deployment], Response]]] = {
            "aws-bedrock": {
                "invoke": self._bedrock_invoke,
                "invoke-with-response-stream": self._bedrock_stream,
                "converse": self._converse,
                "converse-stream": self._converse,
            },
            "azure-openai": {
                "chat/completions": self._azure_chat,
                "embeddings": self._azure_embeddings,
            },
            "gcp-vertexai": {
                "generateContent": self._gemini_generate,
                "streamGenerateContent": self._gemini_stream,
            },
        }
        self.app = self._build_app()
        self._server = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
        # How a stream waits before its next event: True means the fake is stopping. A
        # benchmark may swap in a cheaper wait (bench/fake.py).
        self.pause_stream: Callable[[float], bool] = self._stopped.wait
        # Pace each stream by its own clock (event n due at start + the delays before it), as
        # a model server whose CPU is elsewhere does, instead of sleeping each delay after the
        # previous write: a benchmark on shared cores then does not count the fake's own
        # scheduling delays, 25 of them per stream, as the client's (bench/fake.py sets it).
        self.steady_pace = False
        # With steady_pace: called once per stream that ran to its end, with how late (seconds)
        # its first and its last event left against that clock: the fake's own slowness.
        self.pace_report: Callable[[float, float], None] | None = None
        self.base_url = ""

    # ---- lifecycle -------------------------------------------------------------------------

    def start(self, host: str = "127.0.0.1", port: int = 0) -> "FakeAICore":
        """Serve in a daemon thread; returns self. ``base_url`` is set afterwards."""
        self._server = make_server(host, port, self.app, threaded=True, request_handler=_QuietHandler)
        self._server.socket.listen(1024)  # many concurrent connects (benchmarks: ~300 streams)
        self.base_url = f"http://{host}:{self._server.port}"
        self._stopped.clear()
        # A short poll interval keeps stop() (and so each test's teardown) fast.
        self._thread = threading.Thread(target=self._server.serve_forever, kwargs={"poll_interval": 0.01},
                                        name="fake-aicore", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        """Stop serving; open streams end at their next event."""
        self._stopped.set()
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._thread.join(timeout=5)
            self._server = None

    def __enter__(self) -> "FakeAICore":
        return self.start() if self._server is None else self

    def __exit__(self, *exc: Any) -> None:
        self.stop()

    # ---- configuration ---------------------------------------------------------------------

    def service_key(self) -> dict:
        """An SAP service key pointing at this fake (token URL ``{base_url}/auth/oauth/token``)."""
        return {
            "clientid": self.client_id,
            "clientsecret": self.client_secret,
            "url": self.base_url + "/auth",
            "identityzone": "fake-tenant",
            "identityzoneid": self.identity_zone_id,
            "appname": "fake-aicore",
            "credential-type": "binding-secret",
            "serviceurls": {"AI_API_URL": self.base_url},
        }

    def add_deployment(self, deployment_id: str, model_name: str, version: str = "1",
                       resource_group: str = "default", status: str = "RUNNING",
                       scenario: str = "foundation-models",
                       created_at: str = "2026-01-10T09:00:00Z",
                       require_thought_signature: bool | None = None) -> str:
        """Register a deployment; returns its ``deploymentUrl`` (valid once the fake is started).

        The family follows the SAP model name (:func:`model_family`). ``require_thought_signature``
        (Gemini): None = on for gemini-3*, off otherwise.
        """
        with self._lock:
            self._deployments[deployment_id] = Deployment(
                deployment_id, model_name, version, resource_group, status, scenario, created_at,
                require_thought_signature,
            )
        return self.deployment_url(deployment_id)

    def get_deployment(self, deployment_id: str) -> Deployment:
        """The registered deployment (a live object: change ``require_thought_signature`` on it)."""
        return self._deployments[deployment_id]

    def deployment_url(self, deployment_id: str) -> str:
        """``{base_url}/v2/inference/deployments/{id}``."""
        return f"{self.base_url}/v2/inference/deployments/{deployment_id}"

    def remove_deployment(self, deployment_id: str) -> None:
        """Forget a deployment (its calls then get 404, as after an undeploy)."""
        with self._lock:
            self._deployments.pop(deployment_id, None)

    def script(self, deployment_id: str, *steps: Step | int) -> None:
        """Queue behaviours for the next inference calls of a deployment (an int = ``Step(status=n)``)."""
        with self._lock:
            self._scripts[deployment_id].extend(Step(status=s) if isinstance(s, int) else s for s in steps)

    def revoke_tokens(self) -> None:
        """Invalidate every issued token (next AI Core call answers 401)."""
        with self._lock:
            self._tokens.clear()

    def reset(self) -> None:
        """Clear records and scripts (deployments, tokens and knobs stay)."""
        with self._lock:
            self._scripts.clear()
            self._reset_records()

    def _reset_records(self) -> None:
        self.requests: list[RecordedRequest] = []
        self.token_calls = 0
        self.converse_calls = 0
        self.streams_started = 0
        self.closed_streams = 0
        self.open_streams = getattr(self, "open_streams", 0)
        self.max_open_streams = self.open_streams

    @property
    def inference_requests(self) -> list[RecordedRequest]:
        """The recorded requests to ``/v2/inference/deployments/...``."""
        return [r for r in self.requests if r.deployment_id is not None]

    # ---- Flask app -------------------------------------------------------------------------

    def _build_app(self) -> Flask:
        app = Flask("fake_aicore")
        app.before_request(self._record)
        app.after_request(self._record_status)
        app.register_error_handler(HTTPException, lambda e: _error(e.code or 500, e.description or e.name))
        app.register_error_handler(Exception, self._internal_error)
        app.add_url_rule("/auth/oauth/token", view_func=self._token, methods=["POST"])
        app.add_url_rule("/v2/lm/deployments", view_func=self._list_deployments, methods=["GET"])
        app.add_url_rule("/v2/lm/deployments/<deployment_id>", view_func=self._get_deployment, methods=["GET"])
        app.add_url_rule("/v2/inference/deployments/<deployment_id>/<path:suffix>",
                         view_func=self._inference, methods=["POST"])
        return app

    def _internal_error(self, exc: Exception) -> Response:
        """A bug in the fake: log the traceback, answer a Bedrock-like 500."""
        self.app.logger.exception("fake SAP AI Core failed: %s", exc)
        return _error(500, INTERNAL_ERROR)

    def _record(self) -> None:
        raw = request.get_data(cache=True)
        try:
            parsed = json.loads(raw) if raw else None
        except ValueError:
            parsed = None
        match = _INFERENCE_PATH_RE.match(request.path)
        g.record = RecordedRequest(
            method=request.method,
            path=request.path,
            query=request.args.to_dict(),
            headers=CaseInsensitiveDict((k.lower(), v) for k, v in request.headers.items()),
            json=parsed,
            raw=raw,
            deployment_id=match.group(1) if match else None,
            time=time.monotonic(),
        )
        with self._lock:
            self.requests.append(g.record)

    def _record_status(self, response: Response) -> Response:
        record = g.get("record")
        if record is not None:
            record.status = response.status_code
        return response

    # ---- XSUAA -----------------------------------------------------------------------------

    def _token(self) -> Response:
        """``POST /auth/oauth/token`` in the three forms of spec §2."""
        with self._lock:
            self.token_calls += 1
        if self.token_delay:
            self._stopped.wait(self.token_delay)
        if self.idp_down:
            return _json_response(503, {"error": "temporarily_unavailable", "error_description": "IdP is down"})
        grant = request.form.get("grant_type") or request.args.get("grant_type")
        if grant != "client_credentials":
            return _json_response(400, {"error": "unsupported_grant_type",
                                        "error_description": f"Unsupported grant type: {grant}"})
        auth = request.authorization
        if auth is not None and auth.type == "basic":  # RFC 6749 allows form-encoding inside Basic
            client_id, secret = unquote_plus(auth.username or ""), unquote_plus(auth.password or "")
        else:
            client_id, secret = request.form.get("client_id"), request.form.get("client_secret")
        if client_id != self.client_id or secret != self.client_secret:
            return _json_response(401, {"error": "unauthorized", "error_description": "Bad credentials"})
        with self._lock:
            self._token_counter += 1
            token = f"tok-{self._token_counter}"
            self._tokens[token] = time.monotonic() + self.token_ttl
        return _json_response(200, {
            "access_token": token,
            "token_type": "bearer",
            "expires_in": self.token_ttl,
            "scope": "uaa.resource aicore!b540.x",
            "jti": hashlib.sha1(token.encode()).hexdigest(),
        })

    def _check_token(self) -> Response | None:
        """401 unless the request carries a known, unexpired bearer token (kept in ``g.token``)."""
        header = request.headers.get("Authorization", "")
        if not header.startswith("Bearer "):
            return _error(401, "Jwt is missing")
        token = header[len("Bearer "):]
        with self._lock:
            expiry = self._tokens.get(token)
        if expiry is None:
            return _error(401, "Jwt verification fails")
        if time.monotonic() >= expiry:
            return _error(401, "Jwt is expired")
        g.token = token
        return None

    def _authorize(self) -> tuple[str | None, Response | None]:
        """Token, then resource group: ``(group, None)`` or ``(None, error answer)``."""
        failure = self._check_token()
        return (None, failure) if failure else self._check_resource_group()

    def _check_resource_group(self) -> tuple[str | None, Response | None]:
        """The ``AI-Resource-Group`` header: 400 when missing, 403 when unknown."""
        group = request.headers.get("AI-Resource-Group")
        if not group:
            return None, _error(400, "Missing header: AI-Resource-Group")
        with self._lock:
            known = {d.resource_group for d in self._deployments.values()} | {"default"}
        if group not in known:
            return None, _error(403, f"No access to resource group '{group}'")
        return group, None

    # ---- AI API ----------------------------------------------------------------------------

    def _deployment_json(self, dep: Deployment) -> dict:
        model = {"name": dep.model_name, "version": dep.version}
        return {
            "id": dep.id,
            "configurationId": f"cfg-{dep.id}",
            "configurationName": dep.model_name.replace("anthropic--", ""),
            "scenarioId": dep.scenario,
            "status": dep.status,
            "targetStatus": dep.status,
            "lastOperation": "CREATE",
            "latestRunningConfigurationId": f"cfg-{dep.id}",
            "createdAt": dep.created_at,
            "modifiedAt": dep.created_at,
            "submissionTime": dep.created_at,
            "startTime": dep.created_at,
            "deploymentUrl": self.deployment_url(dep.id) if dep.status == "RUNNING" else "",
            "details": {
                "resources": {"backend_details": {"model": model}, "backendDetails": {"model": dict(model)}},
                "scaling": {"backend_details": {}, "backendDetails": {}},
            },
        }

    def _list_deployments(self) -> Response:
        """``GET /v2/lm/deployments`` filtered by resource group, status, scenarioId, $top/$skip."""
        group, failure = self._authorize()
        if failure:
            return failure
        with self._lock:
            deps = [d for d in self._deployments.values() if d.resource_group == group]
        status, scenario = request.args.get("status"), request.args.get("scenarioId")
        deps = [d for d in deps if (not status or d.status == status) and (not scenario or d.scenario == scenario)]
        try:
            skip = int(request.args.get("$skip", 0))
            top = int(request.args.get("$top", 10000))
        except ValueError:
            return _error(400, "$top and $skip must be integers")
        page = deps[skip : skip + top]
        return _json_response(200, {"count": len(deps), "resources": [self._deployment_json(d) for d in page]})

    def _get_deployment(self, deployment_id: str) -> Response:
        """``GET /v2/lm/deployments/<id>``."""
        group, failure = self._authorize()
        if failure:
            return failure
        dep = self._deployments.get(deployment_id)
        if dep is None or dep.resource_group != group:
            return _error(404, f"Deployment {deployment_id} not found")
        return _json_response(200, self._deployment_json(dep))

    # ---- inference -------------------------------------------------------------------------

    def _inference(self, deployment_id: str, suffix: str) -> Response:
        """Route ``/v2/inference/deployments/<id>/<suffix>`` to the deployment family's handler."""
        group, failure = self._authorize()
        if failure:
            return failure
        dep = self._deployments.get(deployment_id)
        if dep is None or dep.resource_group != group or dep.status != "RUNNING":
            return _error(404, f"Deployment {deployment_id} not found in resource group '{group}'")
        operation = suffix
        if dep.family == "gcp-vertexai":
            match = GEMINI_PATH_RE.match(suffix)
            if match and match.group(1) != dep.model_name:
                return _google_json(404, gemini_model_not_found(match.group(1)))
            operation = match.group(2) if match else ""
        handler = self._families.get(dep.family, {}).get(operation)
        if handler is None:
            return _error(404, f"No route '{suffix}' for a {dep.family} deployment in the fake")
        return handler(dep)

    def _next_step(self, dep: Deployment) -> Step:
        with self._lock:
            queue = self._scripts.get(dep.id)
            return queue.popleft() if queue else self.default_step

    def _begin_call(self, dep: Deployment, family_error: Callable[[Step, dict | None], Response] | None = None
                    ) -> tuple[Step, Response | None]:
        """Consume the deployment's next step; apply revoke/headers delay/status.

        Returns the step and, when the step decides the answer, that answer. A scripted status
        answers Bedrock's ``{"message": ...}``, or ``family_error(step, headers)`` when given;
        401/403/404 always come from AI Core itself (``{"message": ...}``).
        """
        step = self._next_step(dep)
        if step.headers_delay:
            self._stopped.wait(step.headers_delay)
        if step.revoke_token:
            with self._lock:
                self._tokens.pop(g.get("token"), None)
            return step, _error(401, "Jwt is expired")
        if step.status != 200:
            headers = {"Retry-After": str(step.retry_after)} if step.retry_after is not None else None
            if step.body is not None:
                return step, self._raw_response(step.status, step.body, headers)
            if family_error is not None and step.status not in (401, 403, 404):
                return step, family_error(step, headers)
            return step, _error(step.status, ERROR_MESSAGES.get(step.status, f"Fake error {step.status}"), headers)
        return step, None

    @staticmethod
    def _raw_response(status: int, body: Any, headers: dict | None = None) -> Response:
        if isinstance(body, (dict, list)):
            return _json_response(status, body, headers)
        return Response(body, status=status, mimetype="text/plain", headers=headers)

    def _bedrock_rules(self, dep: Deployment) -> BedrockRules:
        return BedrockRules(
            model_name=dep.model_name,
            max_tokens_limit=self.model_max_tokens.get(dep.model_name, FALLBACK_MAX_TOKENS),
            reject_fields=frozenset(self.reject_fields),
            allowed_betas=frozenset(self.allowed_betas),
            accept_ttl_1h=self.accept_ttl_1h,
        )

    def _new_id(self, prefix: str) -> str:
        with self._lock:
            self._id_counter += 1
            n = self._id_counter
        digest = hashlib.sha1(f"{prefix}{n}".encode()).hexdigest()[:22]
        return f"{prefix}_bdrk_01{digest}"

    def _bedrock_call(self, dep: Deployment) -> tuple[BedrockCall | None, Response | None]:
        """Shared start of invoke and stream: step, validation, reply and usage.

        Returns ``(call, None)``, or ``(None, answer)`` when the step or the validator decided.
        """
        step, early = self._begin_call(dep)
        if early is not None:
            return None, early
        raw = request.get_data(cache=True)
        try:
            body = validate_bedrock(raw, self._bedrock_rules(dep)) if self.strict else loads(raw)
        except Rejection as rejection:
            return None, _error(rejection.status, rejection.message)
        except ValueError:
            return None, _error(400, "Malformed input request, please reformat your input and try again.")
        if not isinstance(body, dict):
            body = {}
        if step.reply is not None:
            blocks = reply_blocks_from(step.reply, self._new_id)
        else:
            blocks = build_reply(body, self.stream_event_count, self._new_id, huge=step.huge_json_delta)
        if _thinking_on(body) and not any(b.get("type") == "thinking" for b in blocks):
            signature = base64.b64encode(f"fake-signature-{self._new_id('sig')}".encode()).decode()
            blocks.insert(0, thinking_block(signature))
        return BedrockCall(step, self._new_id("msg"), anthropic_model_id(dep.model_name), blocks, usage_for(raw)), None

    def _bedrock_invoke(self, dep: Deployment) -> Response:
        """``POST .../invoke``: the whole Message JSON (spec §6.2)."""
        call, early = self._bedrock_call(dep)
        if early is not None:
            return early
        if call.step.body is not None:
            return self._raw_response(200, call.step.body)
        return _json_response(200, message_json(call.message_id, call.model_id, call.blocks, call.usage))

    def _bedrock_stream(self, dep: Deployment) -> Response:
        """``POST .../invoke-with-response-stream``: SSE ``data:`` lines (spec §6.3)."""
        started = g.record.time
        call, early = self._bedrock_call(dep)
        if early is not None:
            return early
        step, usage = call.step, call.usage
        first_byte: list[float] = []

        def metrics() -> dict:
            now = time.monotonic()
            return {
                "inputTokenCount": usage["input_tokens"],
                "outputTokenCount": 0,
                "invocationLatency": int((now - started) * 1000),
                "firstByteLatency": int(((first_byte[0] if first_byte else now) - started) * 1000),
                "cacheReadInputTokenCount": usage["cache_read_input_tokens"],
                "cacheWriteInputTokenCount": usage["cache_creation_input_tokens"],
            }

        events = stream_events(call.message_id, call.model_id, call.blocks, usage, self.stream_event_count, metrics)
        return self._sse_response(step, lambda: plan_lines(events, step), first_byte=first_byte)

    def _sse_response(self, step: Step, lines: Callable[[], Iterable[str]], crlf: bool = False,
                      first_byte: list[float] | None = None) -> Response:
        """The 200 SSE answer: the step's raw ``body`` if set, else ``lines()`` timed and chunked.

        ``lines`` is called here (in the view), so a bad knob (an unknown ``error_event``) fails
        before the first byte.
        """
        if step.body is not None:
            raw_body = step.body.encode() if isinstance(step.body, str) else bytes(step.body)
            events: Iterable[tuple[float, bytes]] = [(step.first_event_delay or self.first_token_delay, raw_body)]
        else:
            events = self._timed(lines(), step, crlf=crlf)
        stream = self._stream(events, step, first_byte if first_byte is not None else [])
        return Response(stream, status=200, mimetype="text/event-stream")

    def _timed(self, lines: Iterable[str], step: Step, crlf: bool = False) -> Iterator[tuple[float, bytes]]:
        """Attach the delay before each event: first-event delay, interval, the step's gap."""
        first = step.first_event_delay or self.first_token_delay
        gap_index, gap = step.gap_after_event or (-1, 0.0)
        crlf = crlf or step.chunking == "crlf"
        for n, line in enumerate(lines):
            delay = first if n == 0 else self.stream_interval + (gap if n - 1 == gap_index else 0.0)
            yield delay, sse_line(line, crlf=crlf)

    def _stream(self, events: Iterable[tuple[float, bytes]], step: Step, first_byte: list[float]) -> Iterator[bytes]:
        """The response generator: flush headers, then write each segment after its delay.

        A client that goes away makes Werkzeug close this generator (``GeneratorExit`` at a
        ``yield``); that is counted in ``closed_streams``.
        """
        with self._lock:
            self.streams_started += 1
            self.open_streams += 1
            self.max_open_streams = max(self.max_open_streams, self.open_streams)
        try:
            yield b""  # sends the status line and headers now
            due = time.monotonic()
            first_late = last_late = None
            for delay, data in chunk_segments(events, step.chunking, random.Random(self.streams_started)):
                if delay and self.steady_pace:
                    due += delay
                    delay = max(0.0, due - time.monotonic())
                if delay and self.pause_stream(delay):
                    return
                if self._stopped.is_set():
                    return
                if not first_byte:
                    first_byte.append(time.monotonic())
                if self.steady_pace:
                    last_late = time.monotonic() - due
                    if first_late is None:
                        first_late = last_late
                yield data
            if self.pace_report is not None and first_late is not None:
                self.pace_report(first_late, last_late)
        except GeneratorExit:
            with self._lock:
                self.closed_streams += 1
            raise
        finally:
            with self._lock:
                self.open_streams -= 1

    def _converse(self, dep: Deployment) -> Response:
        """``/converse`` and ``/converse-stream``: deliberately 404 (the gateway must not use them)."""
        with self._lock:
            self.converse_calls += 1
        return _error(404, "The fake SAP AI Core does not serve Converse; use /invoke")

    # ---- shared by the translated families ---------------------------------------------------

    def _next_n(self) -> int:
        with self._lock:
            self._id_counter += 1
            return self._id_counter

    def _alnum_id(self, prefix: str, length: int) -> str:
        """``prefix`` + ``length`` (at most 32) letters and digits, deterministic per fake and call order."""
        digest = hashlib.sha256(f"{prefix}{self._next_n()}".encode()).digest()
        alphabet = string.ascii_letters + string.digits
        return prefix + "".join(alphabet[b % len(alphabet)] for b in digest[:length])

    def _reply_blocks(self, step: Step, anthropic_view: dict, ids: Callable[[str], str]) -> list[dict]:
        """The model's reply as content blocks: the step's scripted ``reply``, else :func:`build_reply`."""
        if step.reply is not None:
            return reply_blocks_from(step.reply, ids)
        return build_reply(anthropic_view, self.stream_event_count, ids, huge=step.huge_json_delta)

    # ---- Azure OpenAI ------------------------------------------------------------------------

    @staticmethod
    def _azure_failure(operation: str) -> Callable[[Step, dict | None], Response]:
        """The scripted-status answer of an Azure operation (spec §8.5)."""
        def answer(step: Step, headers: dict | None) -> Response:
            body = azure_status_error(step.status, step.retry_after, operation, request.args.get("api-version", ""))
            return _json_response(step.status, body, headers)
        return answer

    @staticmethod
    def _check_api_version() -> Response | None:
        """``?api-version=`` is required (400) and must look like ``2025-04-01-preview`` (else 404)."""
        version = request.args.get("api-version")
        if not version:
            return _json_response(400, azure_error(
                "The api-version query parameter (?api-version=) is required for all requests.", "api-version",
                "MissingApiVersionParameter"))
        if not AZURE_API_VERSION_RE.match(version):
            return _json_response(404, {"error": {"code": "404", "message": "Resource not found"}})
        return None

    def _azure_begin(self, dep: Deployment, operation: str) -> tuple[Step, Response | None]:
        step, early = self._begin_call(dep, self._azure_failure(operation))
        return step, early if early is not None else self._check_api_version()

    def _azure_chat(self, dep: Deployment) -> Response:
        """``POST .../chat/completions?api-version=V``: chat.completion (§8.2) or its chunk stream (§8.3)."""
        step, early = self._azure_begin(dep, "ChatCompletions_Create")
        if early is not None:
            return early
        if dep.model_name.startswith("text-embedding-"):
            return _json_response(400, operation_not_supported("chatCompletion", dep.model_name))
        raw = request.get_data(cache=True)
        try:
            body = validate_azure_chat(raw, AzureRules(dep.model_name)) if self.strict else parse_azure_body(raw)
        except ApiRejection as rejection:
            return _json_response(rejection.status, rejection.payload)
        blocks = self._reply_blocks(step, chat_as_anthropic(body), lambda _prefix: self._alnum_id("call_", 24))
        outcome = azure_outcome(blocks, body, azure_is_reasoning(dep.model_name))
        usage = azure_usage(*prompt_usage(raw), outcome)
        completion_id, created = self._alnum_id("chatcmpl-", 29), int(self.clock())
        if not body.get("stream"):
            if step.body is not None:
                return self._raw_response(200, step.body)
            return _json_response(200, azure_completion(completion_id, created, dep.model_name, outcome, usage))
        options = body.get("stream_options")
        include_usage = isinstance(options, dict) and bool(options.get("include_usage"))

        def lines() -> Iterator[str]:
            payloads = azure_stream_payloads(completion_id, created, dep.model_name, outcome, usage,
                                             self.stream_event_count, include_usage)
            error_line = family_error_line(step, AZURE_ERROR_EVENT_LINES, 0)
            return plan_payloads(payloads, step, error_line, AZURE_MALFORMED_LINE)

        return self._sse_response(step, lines)

    def _azure_embeddings(self, dep: Deployment) -> Response:
        """``POST .../embeddings?api-version=V`` (§8.4); validated whatever ``strict`` says (only
        unknown parameters pass when it is off), since a bad input has no vector."""
        step, early = self._azure_begin(dep, "Embeddings_Create")
        if early is not None:
            return early
        if not dep.model_name.startswith("text-embedding-"):
            return _json_response(400, operation_not_supported("embeddings", dep.model_name))
        try:
            body = parse_azure_body(request.get_data(cache=True))
        except ApiRejection as rejection:
            return _json_response(rejection.status, rejection.payload)
        problem = check_embeddings(body, dep.model_name, self.strict)
        if problem:
            return _json_response(400, problem)
        if step.body is not None:
            return self._raw_response(200, step.body)
        return _json_response(200, embeddings_answer(body, dep.model_name))

    # ---- Gemini --------------------------------------------------------------------------------

    @staticmethod
    def _gemini_failure(step: Step, headers: dict | None) -> Response:
        return _google_json(step.status, gemini_status_error(step.status), headers)

    def _gemini_signature(self) -> str:
        """A new thoughtSignature (base64, opaque); remembered, so a later turn can be checked."""
        digest = hashlib.sha256(f"thought-signature-{self._next_n()}".encode()).digest()
        signature = base64.b64encode(b"\x12\x40" + digest * 2).decode()
        with self._lock:
            self._signatures.add(signature)
        return signature

    def _gemini_call(self, dep: Deployment) -> tuple[GeminiCall | None, Response | None]:
        """Shared start of generateContent and streamGenerateContent: step, validation, answer."""
        step, early = self._begin_call(dep, self._gemini_failure)
        if early is not None:
            return None, early
        raw = request.get_data(cache=True)
        rules = GeminiRules(dep.model_name, dep.requires_thought_signature, self._signatures,
                            frozenset(self.gemini_schema_keys))
        try:
            body = validate_gemini(raw, rules) if self.strict else parse_gemini_body(raw)
        except ApiRejection as rejection:
            return None, _google_json(rejection.status, rejection.payload)
        blocks = self._reply_blocks(step, gemini_as_anthropic(body), lambda _prefix: "")
        outcome = gemini_outcome(blocks, body, dep.model_name, self._gemini_signature,
                                 signs_text=dep.model_name.startswith("gemini-3"))
        digest = hashlib.sha1(f"response-{self._next_n()}".encode()).digest()
        meta = {"modelVersion": dep.model_name, "createTime": _rfc3339(self.clock()),
                "responseId": base64.urlsafe_b64encode(digest[:17]).decode().rstrip("=")}
        return GeminiCall(step, outcome, *prompt_usage(raw), meta), None

    def _gemini_generate(self, dep: Deployment) -> Response:
        """``POST .../models/<model>:generateContent``: one GenerateContentResponse (§9.2)."""
        call, early = self._gemini_call(dep)
        if early is not None:
            return early
        if call.step.body is not None:
            return self._raw_response(200, call.step.body)
        return _google_json(200, gemini_response(call.meta, call.outcome, call.prompt_tokens, call.cached_tokens))

    def _gemini_stream(self, dep: Deployment) -> Response:
        """``POST .../models/<model>:streamGenerateContent``: SSE ``data:`` events (§9.3).

        With ``?alt=sse`` the answer is SSE, lines ending in ``\\r\\n`` as Google's SSE does
        (``gemini_sse_crlf``). Without it, Vertex's own default, a JSON array whose objects
        arrive one by one (``[{...}``, ``,\\r\\n{...}``, ..., ``]``), unless
        ``gemini_array_without_alt_sse`` is off (then SSE either way, as some peers report
        through AI Core).
        """
        call, early = self._gemini_call(dep)
        if early is not None:
            return early
        step = call.step

        def lines() -> Iterator[str]:
            payloads = gemini_stream_payloads(call.meta, call.outcome, call.prompt_tokens, call.cached_tokens,
                                              self.stream_event_count, self.gemini_trailing_usage_chunk)
            error_line = family_error_line(step, GEMINI_ERROR_EVENT_LINES, 1)
            return plan_payloads(payloads, step, error_line, GEMINI_MALFORMED_LINE)

        if request.args.get("alt") != "sse" and self.gemini_array_without_alt_sse \
                and step.body is None:
            events = json_array_pieces(self._timed(lines(), step))
            return Response(self._stream(events, step, []), status=200,
                            mimetype="application/json")
        return self._sse_response(step, lines, crlf=self.gemini_sse_crlf)


# --------------------------------------------------------------------------------------------
# Command line
# --------------------------------------------------------------------------------------------


def deployment_id_for(model_name: str) -> str:
    """Deterministic deployment id of a model on the command line: ``d-`` + short hash."""
    return "d-" + hashlib.sha1(model_name.encode()).hexdigest()[:12]


def main(argv: list[str] | None = None) -> int:
    """Run the fake until SIGTERM/SIGINT; print ``READY <base_url>`` once it listens."""
    parser = argparse.ArgumentParser(prog="python -m app.simulator", description=__doc__.splitlines()[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--models", default="anthropic--claude-4.5-sonnet,anthropic--claude-4.5-haiku",
                        help="comma-separated SAP model names; one deployment each (any family: "
                             "anthropic--*, gpt-*, o1/o3*/o4-*, text-embedding-*, gemini-*)")
    parser.add_argument("--add-model", action="append", default=[], metavar="NAME",
                        help="one more deployment besides --models (repeatable, commas allowed), "
                             "e.g. --add-model gpt-5.4 --add-model gemini-2.5-pro")
    parser.add_argument("--resource-group", default="default")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first event")
    parser.add_argument("--chunks", type=int, default=4, help="text_delta events per text block")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--token-ttl", type=int, default=43199)
    parser.add_argument("--client-id", default="sb-test!b1|aicore!b540")
    parser.add_argument("--client-secret", default="s3cr3t")
    parser.add_argument("--no-strict", action="store_true", help="skip request validation (every family)")
    parser.add_argument("--write-key", metavar="PATH", help="write the service key JSON here")
    args = parser.parse_args(argv)

    fake = FakeAICore(args.client_id, args.client_secret, args.token_ttl)
    fake.first_token_delay = args.first_token_delay
    fake.stream_event_count = args.chunks
    fake.stream_interval = args.interval
    fake.strict = not args.no_strict
    fake.start(args.host, args.port)
    for model in dict.fromkeys(filter(None, (m.strip() for m in ",".join([args.models, *args.add_model]).split(",")))):
        url = fake.add_deployment(deployment_id_for(model), model, resource_group=args.resource_group)
        print(f"deployment {model} {url}", file=sys.stderr)
    if args.write_key:
        with open(args.write_key, "w") as f:
            json.dump(fake.service_key(), f, indent=2)

    done = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: done.set())
    print(f"READY {fake.base_url}", flush=True)
    while not done.wait(0.5):
        pass
    fake.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
