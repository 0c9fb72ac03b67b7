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
* ``/converse`` and ``/converse-stream`` answer 404: the gateway must never call them.

The "model" is deterministic: it greets, echoes tool results ("Tool said: ...") and asks for one
``Bash`` tool call when the user asks to run something (see :func:`build_reply`).

Failures are scripted per deployment with :class:`Step` objects (status sequences with
``Retry-After``, a revoked token, delays, silence gaps, byte-level chunking, mid-stream errors,
early EOF, malformed lines, a 1 MB event). Every request is recorded for assertions.

Azure OpenAI and Gemini are not emulated yet; a handler table per model family
(``FakeAICore._families``) is where they plug in.

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

prints ``READY <base_url>`` and serves until SIGTERM/SIGINT.

Only the standard library, Flask and Werkzeug are used; nothing from ``app/`` is imported.
"""

from __future__ import annotations

import argparse
import base64
import collections
import dataclasses
import hashlib
import itertools
import json
import random
import re
import signal
import sys
import threading
import time
from typing import Any, Callable, Iterable, Iterator
from urllib.parse import unquote_plus

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException
from werkzeug.serving import WSGIRequestHandler, make_server

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
        ``non_json``).
    error_after_events: how many normal events precede the error event (0 = before message_start).
    eof_after_events: end the stream cleanly after this many events (no ``message_stop``).
    malformed_line_after: insert a truncated JSON ``data:`` line after this many events, then go on.
    huge_json_delta: the reply is a ``Write`` tool call whose input arrives as one ~1 MB
        ``input_json_delta``.
    reply: what the model says: a string (one text block) or a list of content blocks
        (``text``/``tool_use``/``thinking`` dicts, full form as in a non-streaming response).
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

    @property
    def family(self) -> str:
        """The executable family (spec §4) chosen by the SAP model name."""
        return model_family(self.model_name)


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
# SSE framing and chunking
# --------------------------------------------------------------------------------------------


def sse_line(data: str, crlf: bool = False) -> bytes:
    """One SSE event: ``data: <data>`` and a blank line."""
    nl = "\r\n" if crlf else "\n"
    return f"data: {data}{nl}{nl}".encode()


def plan_lines(events: Iterable[dict], step: Step) -> Iterator[str]:
    """The ``data:`` payloads of a stream after the step's error/EOF/malformed knobs.

    An error event asked for after more events than the stream has comes last.
    """
    for n, event in enumerate(events):
        if step.error_event and n == step.error_after_events:
            break
        if step.eof_after_events is not None and n == step.eof_after_events:
            return
        if step.malformed_line_after is not None and n == step.malformed_line_after:
            yield MALFORMED_LINE
        yield json.dumps(event, separators=(",", ":"))
    if step.error_event:
        yield ERROR_EVENT_LINES[step.error_event]


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

        self._lock = threading.Lock()
        self._tokens: dict[str, float] = {}  # token -> monotonic expiry
        self._token_counter = 0
        self._id_counter = 0
        self._deployments: dict[str, Deployment] = {}
        self._scripts: dict[str, collections.deque[Step]] = collections.defaultdict(collections.deque)
        self._reset_records()

        #: Handlers per model family and URL suffix; add Azure/Gemini here later.
        self._families: dict[str, dict[str, Callable[[Deployment], Response]]] = {
            "aws-bedrock": {
                "invoke": self._bedrock_invoke,
                "invoke-with-response-stream": self._bedrock_stream,
                "converse": self._converse,
                "converse-stream": self._converse,
            },
        }
        self.app = self._build_app()
        self._server = None
        self._thread: threading.Thread | None = None
        self._stopped = threading.Event()
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
                       created_at: str = "2026-01-10T09:00:00Z") -> str:
        """Register a deployment; returns its ``deploymentUrl`` (valid once the fake is started)."""
        with self._lock:
            self._deployments[deployment_id] = Deployment(
                deployment_id, model_name, version, resource_group, status, scenario, created_at
            )
        return self.deployment_url(deployment_id)

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
        handler = self._families.get(dep.family, {}).get(suffix)
        if handler is None:
            return _error(404, f"No route '{suffix}' for a {dep.family} deployment in the fake")
        return handler(dep)

    def _next_step(self, dep: Deployment) -> Step:
        with self._lock:
            queue = self._scripts.get(dep.id)
            return queue.popleft() if queue else self.default_step

    def _begin_call(self, dep: Deployment) -> tuple[Step, Response | None]:
        """Consume the deployment's next step; apply revoke/headers delay/status.

        Returns the step and, when the step decides the answer, that answer.
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
            if step.body is None:
                return step, _error(step.status, ERROR_MESSAGES.get(step.status, f"Fake error {step.status}"), headers)
            return step, self._raw_response(step.status, step.body, headers)
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
            body = validate_bedrock(raw, self._bedrock_rules(dep)) if self.strict else json.loads(raw)
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

        if step.body is not None:
            raw_body = step.body.encode() if isinstance(step.body, str) else bytes(step.body)
            events: Iterable[tuple[float, bytes]] = [(step.first_event_delay or self.first_token_delay, raw_body)]
        else:
            events = stream_events(call.message_id, call.model_id, call.blocks, usage, self.stream_event_count, metrics)
            events = self._timed(plan_lines(events, step), step)
        return Response(self._stream(events, step, first_byte), status=200, mimetype="text/event-stream")

    def _timed(self, lines: Iterable[str], step: Step) -> Iterator[tuple[float, bytes]]:
        """Attach the delay before each event: first-event delay, interval, the step's gap."""
        first = step.first_event_delay or self.first_token_delay
        gap_index, gap = step.gap_after_event or (-1, 0.0)
        for n, line in enumerate(lines):
            delay = first if n == 0 else self.stream_interval + (gap if n - 1 == gap_index else 0.0)
            yield delay, sse_line(line, crlf=step.chunking == "crlf")

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
            for delay, data in chunk_segments(events, step.chunking, random.Random(self.streams_started)):
                if delay and self._stopped.wait(delay):
                    return
                if self._stopped.is_set():
                    return
                if not first_byte:
                    first_byte.append(time.monotonic())
                yield data
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
                        help="comma-separated SAP model names; one deployment each")
    parser.add_argument("--resource-group", default="default")
    parser.add_argument("--first-token-delay", type=float, default=0.0, help="seconds before the first event")
    parser.add_argument("--chunks", type=int, default=4, help="text_delta events per text block")
    parser.add_argument("--interval", type=float, default=0.0, help="seconds between events")
    parser.add_argument("--token-ttl", type=int, default=43199)
    parser.add_argument("--client-id", default="sb-test!b1|aicore!b540")
    parser.add_argument("--client-secret", default="s3cr3t")
    parser.add_argument("--no-strict", action="store_true", help="skip Bedrock request validation")
    parser.add_argument("--write-key", metavar="PATH", help="write the service key JSON here")
    args = parser.parse_args(argv)

    fake = FakeAICore(args.client_id, args.client_secret, args.token_ttl)
    fake.first_token_delay = args.first_token_delay
    fake.stream_event_count = args.chunks
    fake.stream_interval = args.interval
    fake.strict = not args.no_strict
    fake.start(args.host, args.port)
    for model in filter(None, (m.strip() for m in args.models.split(","))):
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
