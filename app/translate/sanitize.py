"""Anthropic Messages body -> body for Bedrock ``/invoke`` on SAP AI Core.

This module owns the request sanitizer for Claude on Bedrock: :func:`sanitize_bedrock`
runs an ordered list of small named steps (``STEPS``), each ``(body, ctx) -> body``
and each about one concern of ``sap-ai-core.md`` section 7, driven by a
:class:`~app.translate.profiles.ModelProfile`.  It also owns the path syntax used
to strip learned fields (:func:`strip_paths`, shared with ``self_heal.py``).

Rules every step follows:

* Copy-on-write.  The input body and everything nested in it is never mutated;
  a step returns the *same object* when it changes nothing, and otherwise a new
  container for every level it touched, sharing the untouched sub-objects (the
  tool schemas and the system prompt are usually shared with the input).
* Never alter, reorder or drop ``thinking`` / ``redacted_thinking`` blocks or their
  signatures (only a ``cache_control`` put on one is removed); never reorder
  messages or blocks.
* Every change that is not the routine Bedrock envelope is recorded as a short,
  stable repair name (see ``SanitizeResult.repairs``); the envelope (``model``,
  ``stream``, ``anthropic_version``) is not a repair.

Repair names: ``beta.dropped``, ``beta.renamed``, ``context_management``,
``output_config``, ``<strip_field>`` (``safeguards``, ``service_tier``, ...),
``system_message_folded``, ``message.<key>``, ``max_tokens_clamped``,
``thinking.<key>`` (an unknown key such as ``display`` removed),
``thinking.adaptive->enabled``, ``thinking.enabled->adaptive``,
``thinking.budget_clamped``, ``thinking.dropped``, ``thinking.unsupported``,
``thinking.forced_tool``, ``thinking.tool_loop``,
``sampling.temperature``, ``sampling.top_p``, ``sampling.top_k``,
``tools.empty``, ``server_tool.<kind>`` (``server_tool.web_search``),
``tool.<key>`` (``tool.defer_loading``, ``tool.$schema``, ...),
``tool.placeholder``, ``tool_choice``, ``tool_reference->text``,
``tool_result.<type>->text``, ``tool_result.str->text``, ``tool_id``, ``empty_text_dropped``,
``empty_message_dropped``, ``prefill_dropped``, ``cache_control.<key>``
(``cache_control.scope``), ``cache_control.ttl``, ``cache_control.ttl_order``,
``cache_control.limit``, ``cache_control.thinking``, ``cache_control.invalid``,
``cache_control.moved``, ``healed:<path>`` (an ``extra_strip`` path removed
something).

Path syntax (``extra_strip`` and ``self_heal.HealRule.key``): a dotted path of
keys, e.g. ``context_management``, ``output_config.effort``, ``thinking.display``,
``messages.*.output_config``, ``messages.*.content.*.cache_control.scope``,
``tools.*.defer_loading``.  A segment ``*`` matches every element of a list (or
every value of an object); a numeric segment matches one list index; a key
segment that meets a list applies to every element (``tools.defer_loading`` ==
``tools.*.defer_loading``).  The last segment is always an object key, which is
removed wherever the path resolves.  A top-level object left empty by a nested
removal (``output_config`` after ``output_config.effort``) is removed too.  One
string may hold several paths separated by commas.  Keys containing ``.`` or
``,`` cannot be addressed.

Pure: stdlib only, no Flask, no requests, no logging, no config reads.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from typing import Any, Callable, Iterable, List, Optional, Sequence, Tuple

from .profiles import ModelProfile

__all__ = [
    "BEDROCK_ANTHROPIC_VERSION",
    "PREFILL_ERROR",
    "SanitizeError",
    "SanitizeResult",
    "STEPS",
    "sanitize_bedrock",
    "parse_path",
    "strip_paths",
]

BEDROCK_ANTHROPIC_VERSION = "bedrock-2023-05-31"

PREFILL_ERROR = (
    "This model does not support assistant message prefill. "
    "The conversation must end with a user message."
)
IMAGE_URL_ERROR = "image URLs are not supported by Bedrock on SAP AI Core; send base64"
DOCUMENT_URL_ERROR = "document URLs are not supported by Bedrock on SAP AI Core; send base64"

MAX_CACHE_BREAKPOINTS = 4
MIN_THINKING_BUDGET = 1024
CACHE_TTLS = frozenset({"5m", "1h"})

# Envelope keys the sanitizer rebuilds itself.
_ENVELOPE_KEYS = frozenset({"model", "stream", "anthropic_version", "anthropic_beta"})
_MESSAGE_KEYS = frozenset({"role", "content"})
_THINKING_BLOCKS = frozenset({"thinking", "redacted_thinking"})
# Keys kept per thinking type; everything else (``display``, ``context_management``) goes.
_THINKING_KEYS = {"enabled": ("type", "budget_tokens"), "adaptive": ("type",), "disabled": ("type",)}

# Server tools Bedrock does not run; removed always.
SERVER_TOOL_PREFIXES = ("web_search_", "web_fetch_", "code_execution_", "memory_", "tool_search_tool_")
CUSTOM_TOOL_KEYS = frozenset({"name", "description", "input_schema", "cache_control", "type"})
TOOL_SEARCH_KEYS = frozenset({"defer_loading", "input_examples", "strict", "eager_input_streaming"})
PLACEHOLDER_TOOL = "DeferredToolPlaceholder"
TOOL_RESULT_BLOCK_TYPES = frozenset({"text", "image", "document", "search_result"})
_TOOL_ID_RE = re.compile(r"^[a-zA-Z0-9_-]+$")
_TOOL_ID_BAD = re.compile(r"[^a-zA-Z0-9_-]")
_DATE_SUFFIX = re.compile(r"_\d{8}$")


class SanitizeError(ValueError):
    """The request cannot be made valid for Bedrock; ``str(err)`` is the client-facing message."""


@dataclass(frozen=True)
class SanitizeResult:
    """``body``: ready for ``/invoke``; ``repairs``: distinct repair names, in order."""

    body: dict
    repairs: List[str]

    @property
    def changed(self) -> bool:
        """True when anything beyond the routine envelope was changed."""
        return bool(self.repairs)


class _Ctx:
    """Per-call state shared by the steps: the options and the repairs seen."""

    __slots__ = ("profile", "betas", "extra_strip", "repairs", "_seen")

    def __init__(self, profile: ModelProfile, betas: Sequence[str], extra_strip: Sequence[str]):
        self.profile = profile
        self.betas = betas
        self.extra_strip = extra_strip
        self.repairs: List[str] = []
        self._seen: set = set()

    def repair(self, name: str) -> None:
        if name not in self._seen:
            self._seen.add(name)
            self.repairs.append(name)


# ----------------------------------------------------------------- copy-on-write helpers

_DROP = object()


def _map_list(items: list, fn: Callable[[Any], Any]) -> list:
    """``[fn(x) for x in items]`` minus ``_DROP`` results; ``items`` itself if nothing changed."""
    out = None
    for i, item in enumerate(items):
        new = fn(item)
        if new is item:
            if out is not None:
                out.append(item)
            continue
        if out is None:
            out = items[:i]
        if new is not _DROP:
            out.append(new)
    return items if out is None else out


def _set(d: dict, key: str, value: Any) -> dict:
    if key in d and d[key] is value:
        return d
    new = dict(d)
    new[key] = value
    return new


def _without(d: dict, *keys: str) -> dict:
    if not any(k in d for k in keys):
        return d
    return {k: v for k, v in d.items() if k not in keys}


def _map_messages(body: dict, fn: Callable[[Any], Any]) -> dict:
    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return body
    new = _map_list(msgs, fn)
    return body if new is msgs else _set(body, "messages", new)


def _map_content(msg: Any, fn: Callable[[Any], Any]) -> Any:
    """Apply ``fn`` to every block of a message whose content is a list."""
    if not isinstance(msg, dict):
        return msg
    content = msg.get("content")
    if not isinstance(content, list):
        return msg
    new = _map_list(content, fn)
    return msg if new is content else _set(msg, "content", new)


class _Cow:
    """Copy-on-write editor addressing containers by path from the root."""

    __slots__ = ("_src", "_root", "_copies")

    def __init__(self, src: dict):
        self._src = src
        self._root: Optional[dict] = None
        self._copies: dict = {}

    def mut(self, path: Tuple = ()) -> Any:
        """A private (copied once) container at ``path``, its ancestors copied too."""
        c = self._copies.get(path)
        if c is not None:
            return c
        if not path:
            c = self._root = dict(self._src)
        else:
            parent = self.mut(path[:-1])
            child = parent[path[-1]]
            c = dict(child) if isinstance(child, dict) else list(child)
            parent[path[-1]] = c
        self._copies[path] = c
        return c

    def result(self) -> dict:
        return self._src if self._root is None else self._root


# ----------------------------------------------------------------- paths (shared with self_heal)


def parse_path(spec: str) -> Tuple[Tuple[str, ...], ...]:
    """``"a.*.b, c"`` -> ``(("a", "*", "b"), ("c",))``; raises ValueError on an empty segment."""
    out = []
    for part in str(spec).split(","):
        part = part.strip()
        if not part:
            continue
        segs = tuple(s.strip() for s in part.split("."))
        if any(not s for s in segs):
            raise ValueError(f"invalid path {part!r}: empty segment")
        if segs[-1] == "*" or segs[-1].isdigit():
            raise ValueError(f"invalid path {part!r}: the last segment must be a key")
        out.append(segs)
    return tuple(out)


def _strip(node: Any, segs: Tuple[str, ...], i: int, removed: List[int]) -> Any:
    seg = segs[i]
    last = i == len(segs) - 1
    if isinstance(node, list):
        if seg.isdigit():
            idx = int(seg)
            if last or idx >= len(node):
                return node
            child = _strip(node[idx], segs, i + 1, removed)
            if child is node[idx]:
                return node
            new = list(node)
            new[idx] = child
            return new
        nxt = i + 1 if seg == "*" else i
        if nxt >= len(segs):
            return node
        return _map_list(node, lambda x: _strip(x, segs, nxt, removed))
    if not isinstance(node, dict):
        return node
    if seg == "*":
        if last:
            return node
        new = None
        for k, v in node.items():
            c = _strip(v, segs, i + 1, removed)
            if c is not v:
                if new is None:
                    new = dict(node)
                new[k] = c
        return node if new is None else new
    if seg not in node:
        return node
    if last:
        removed[0] += 1
        return {k: v for k, v in node.items() if k != seg}
    child = _strip(node[seg], segs, i + 1, removed)
    return node if child is node[seg] else _set(node, seg, child)


def strip_paths(body: dict, specs: Iterable[str]) -> Tuple[dict, List[str]]:
    """Remove every key the path specs name; returns ``(new_body, specs that removed something)``.

    Copy-on-write like the rest of this module; see the module docstring for the syntax.
    """
    hits: List[str] = []
    for spec in specs:
        hit = False
        for segs in parse_path(spec):
            removed = [0]
            new = _strip(body, segs, 0, removed)
            if not removed[0]:
                continue
            hit = True
            top = new.get(segs[0]) if len(segs) > 1 else None
            if isinstance(top, dict) and not top:
                new = _without(new, segs[0])
            body = new
        if hit and spec not in hits:
            hits.append(spec)
    return body, hits


# ----------------------------------------------------------------- small predicates


def _role(msg: Any) -> Optional[str]:
    return msg.get("role") if isinstance(msg, dict) else None


def _is_blank_text(block: Any) -> bool:
    if not isinstance(block, dict) or block.get("type") != "text":
        return False
    text = block.get("text")
    return not isinstance(text, str) or not text.strip()


def _content_is_empty(content: Any) -> bool:
    if content is None:
        return True
    if isinstance(content, str):
        return not content.strip()
    if isinstance(content, list):
        return all(_is_blank_text(b) for b in content)
    return False


def _as_blocks(content: Any) -> list:
    """Message content as a block list (a string becomes one text block)."""
    if isinstance(content, list):
        return content
    if isinstance(content, str):
        return [{"type": "text", "text": content}] if content else []
    return []


# ----------------------------------------------------------------- steps


def _envelope(body: dict, ctx: _Ctx) -> dict:
    """Drop ``model``/``stream``, set ``anthropic_version``, map betas into ``anthropic_beta``."""
    profile = ctx.profile
    raw = list(ctx.betas)
    body_betas = body.get("anthropic_beta")
    if isinstance(body_betas, str):
        raw.append(body_betas)
    elif isinstance(body_betas, list):
        raw.extend(b for b in body_betas if isinstance(b, str))
    betas: List[str] = []
    for item in raw:
        for beta in str(item).split(","):
            beta = beta.strip()
            if not beta:
                continue
            target = profile.beta_renames.get(beta, beta)
            if not profile.beta_allowed(target):
                ctx.repair("beta.dropped")
                continue
            if target != beta:
                ctx.repair("beta.renamed")
            if target not in betas:
                betas.append(target)
    new = {"anthropic_version": BEDROCK_ANTHROPIC_VERSION}
    if betas:
        new["anthropic_beta"] = betas
    for k, v in body.items():
        if k not in _ENVELOPE_KEYS:
            new[k] = v
    return new


def _strip_top_level(body: dict, ctx: _Ctx) -> dict:
    """Remove top-level fields the profile does not accept."""
    p = ctx.profile
    drop = []
    for k in body:
        if (
            k in p.strip_fields
            or (k == "context_management" and not p.accepts_context_management)
            or (k == "output_config" and not p.accepts_output_config)
        ):
            drop.append(k)
            ctx.repair(k)
    return _without(body, *drop) if drop else body


SYSTEM_REMINDER = "<system-reminder>\n{}\n</system-reminder>"


def _system_message_blocks(content: Any) -> list:
    """A ``role:"system"`` message's content as user-turn text blocks.

    Each text is wrapped in ``<system-reminder>`` tags, the convention Claude Code itself
    uses for system context inside user turns, so the model does not take it for the
    user's words. Block-level ``cache_control`` stays on its block.
    """
    if isinstance(content, str):
        content = [content]
    if not isinstance(content, list):
        return []
    out = []
    for b in content:
        if isinstance(b, str):
            b = {"type": "text", "text": b}
        if not isinstance(b, dict):
            continue
        text = b.get("text")
        if b.get("type") == "text" and isinstance(text, str):
            if not text.strip():
                continue
            b = _set(b, "text", SYSTEM_REMINDER.format(text))
        out.append(b)
    return out


def _append_blocks(msg: dict, blocks: list) -> dict:
    return _set(msg, "content", _as_blocks(msg.get("content")) + blocks)


def _prepend_blocks(msg: dict, blocks: list) -> dict:
    """Insert before the user's own blocks but after leading tool_result blocks (API rule)."""
    content = _as_blocks(msg.get("content"))
    k = 0
    while k < len(content) and isinstance(content[k], dict) and content[k].get("type") == "tool_result":
        k += 1
    return _set(msg, "content", content[:k] + blocks + content[k:])


def _fold_system_messages(body: dict, ctx: _Ctx) -> dict:
    """Fold ``role:"system"`` messages into the adjacent user turn, at the same position.

    Append to the previous message when it is a user message; else prepend to the
    next one when it is a user message; else become a user message in place.  The
    top-level ``system`` is never touched (its first block is Claude Code's
    attribution header, and moving text there would break cache prefixes).
    Message-level extras (``output_config``) are dropped; block-level
    ``cache_control`` is kept.  Deterministic: the same input gives the same output.
    """
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not any(_role(m) == "system" for m in msgs):
        return body
    out: list = []
    pending: list = []
    for m in msgs:
        if _role(m) == "system":
            blocks = _system_message_blocks(m.get("content"))
            if not blocks:
                continue
            if not pending and out and _role(out[-1]) == "user":
                out[-1] = _append_blocks(out[-1], blocks)
            else:
                pending.extend(blocks)
            continue
        if pending:
            if _role(m) == "user":
                m = _prepend_blocks(m, pending)
            else:
                out.append({"role": "user", "content": pending})
            pending = []
        out.append(m)
    if pending:
        out.append({"role": "user", "content": pending})
    ctx.repair("system_message_folded")
    return _set(body, "messages", out)


def _message_keys(body: dict, ctx: _Ctx) -> dict:
    """Messages carry only ``role`` and ``content``."""

    def fix(m: Any) -> Any:
        if not isinstance(m, dict) or m.keys() <= _MESSAGE_KEYS:
            return m
        for k in m:
            if k not in _MESSAGE_KEYS:
                ctx.repair(f"message.{k}")
        return {k: v for k, v in m.items() if k in _MESSAGE_KEYS}

    return _map_messages(body, fix)


def _max_tokens(body: dict, ctx: _Ctx) -> dict:
    """Clamp ``max_tokens`` to the model maximum (never raise it)."""
    mt = body.get("max_tokens")
    limit = ctx.profile.max_output_tokens
    if isinstance(mt, int) and not isinstance(mt, bool) and mt > limit:
        ctx.repair("max_tokens_clamped")
        return _set(body, "max_tokens", limit)
    return body


def _thinking(body: dict, ctx: _Ctx) -> dict:
    """Make ``thinking`` fit the profile, clamp its budget, fix sampling parameters.

    ``adaptive`` -> ``{"type":"enabled","budget_tokens":B}`` for 'enabled' profiles,
    with B = ``profile.thinking_budget_tokens`` (31999 by default) clamped to
    ``[1024, max_tokens - 1]``; ``enabled`` -> ``{"type":"adaptive"}`` for
    'adaptive' profiles.  Unknown keys (``display``, ``context_management``) go.
    With ``max_tokens`` < 1025 an ``enabled`` thinking is dropped.  With thinking
    on: ``temperature`` other than 1 and ``top_k`` are removed, ``top_p`` < 0.95
    is removed; on 'adaptive' profiles all three are removed.
    """
    th = body.get("thinking")
    if not isinstance(th, dict):
        return body
    p = ctx.profile
    typ = th.get("type")
    keys = _THINKING_KEYS.get(typ)
    if keys is None:
        return body  # unknown type: let the upstream say what it wants
    if p.thinking_mode == "none":
        ctx.repair("thinking.unsupported")
        return _without(body, "thinking")
    new_th = th
    extras = [k for k in th if k not in keys]
    if extras:
        for k in extras:
            ctx.repair(f"thinking.{k}")
        new_th = {k: th[k] for k in keys if k in th}
    if typ == "adaptive" and p.thinking_mode == "enabled":
        ctx.repair("thinking.adaptive->enabled")
        typ = "enabled"
        new_th = {"type": "enabled", "budget_tokens": p.thinking_budget_tokens}
        converted = True
    elif typ == "enabled" and p.thinking_mode == "adaptive":
        ctx.repair("thinking.enabled->adaptive")
        typ = "adaptive"
        new_th = {"type": "adaptive"}
        converted = True
    else:
        converted = False
    if typ == "enabled":
        mt = body.get("max_tokens")
        if isinstance(mt, int) and not isinstance(mt, bool):
            if mt < MIN_THINKING_BUDGET + 1:
                ctx.repair("thinking.dropped")
                return _without(body, "thinking")
            budget = new_th.get("budget_tokens")
            valid = isinstance(budget, (int, float)) and not isinstance(budget, bool)
            start = int(budget) if valid else p.thinking_budget_tokens
            target = min(max(start, MIN_THINKING_BUDGET), mt - 1)
            if target != budget or type(budget) is not int:  # 2048.0 goes as 2048
                if not converted:
                    ctx.repair("thinking.budget_clamped")
                new_th = {**new_th, "budget_tokens": target}
    body = _set(body, "thinking", new_th)
    if typ == "disabled" or not p.thinking_constraints:
        return body
    drop = []
    if typ == "adaptive" and p.thinking_mode == "adaptive":
        drop = [k for k in ("temperature", "top_p", "top_k") if k in body]
    else:
        temp = body.get("temperature")
        if temp is not None and temp != 1:
            drop.append("temperature")
        if "top_k" in body:
            drop.append("top_k")
        top_p = body.get("top_p")
        if isinstance(top_p, (int, float)) and top_p < 0.95:
            drop.append("top_p")
    for k in drop:
        ctx.repair(f"sampling.{k}")
    return _without(body, *drop)


def _thinking_with_tools(body: dict, ctx: _Ctx) -> dict:
    """Drop ``thinking`` where Claude refuses it next to tools: a forced ``tool_choice``
    (``any`` or a named tool), or, for ``enabled`` thinking, a tool loop whose last assistant
    turn calls tools without starting with its thinking block (Bedrock: "a final assistant
    message must start with a thinking block"; OpenAI-dialect histories never carry one).
    ``adaptive`` thinking may legitimately have skipped thinking, so its loops pass. Runs
    after ``_tools``, which may have removed the ``tool_choice``."""
    th = body.get("thinking")
    if not ctx.profile.thinking_constraints or not isinstance(th, dict) \
            or th.get("type") not in ("enabled", "adaptive"):
        return body
    choice = body.get("tool_choice")
    if isinstance(choice, dict) and choice.get("type") in ("any", "tool"):
        ctx.repair("thinking.forced_tool")
        return _without(body, "thinking")
    if th.get("type") != "enabled":
        return body
    for m in reversed(body.get("messages") or ()):
        if isinstance(m, dict) and m.get("role") == "assistant":
            content = m.get("content")
            if isinstance(content, list) and any(
                    isinstance(b, dict) and b.get("type") == "tool_use" for b in content):
                first = content[0]
                if not (isinstance(first, dict) and first.get("type") in _THINKING_BLOCKS):
                    ctx.repair("thinking.tool_loop")
                    return _without(body, "thinking")
            break
    return body


def _sampling(body: dict, ctx: _Ctx) -> dict:
    """Drop ``top_p`` next to ``temperature`` where the model takes only one of them."""
    if ctx.profile.drop_top_p_with_temperature and "temperature" in body and "top_p" in body:
        ctx.repair("sampling.top_p")
        return _without(body, "top_p")
    return body


def _tool_kind(typ: str) -> str:
    return _DATE_SUFFIX.sub("", typ)


def _fix_custom_tool(tool: dict, ctx: _Ctx) -> dict:
    p = ctx.profile
    keep = CUSTOM_TOOL_KEYS | TOOL_SEARCH_KEYS if p.supports_tool_search else CUSTOM_TOOL_KEYS
    extras = [k for k in tool if k not in keep]
    schema = tool.get("input_schema")
    fix_schema = p.strip_schema_keyword and isinstance(schema, dict) and "$schema" in schema
    if not extras and not fix_schema:
        return tool
    for k in extras:
        ctx.repair(f"tool.{k}")
    new = {k: v for k, v in tool.items() if k in keep}
    if fix_schema:
        ctx.repair("tool.$schema")
        new["input_schema"] = _without(schema, "$schema")
    return new


def _tool_kept(t: Any, p: ModelProfile) -> bool:
    """True for a tool ``_tools`` keeps as is or rebuilt (not a server tool, not the placeholder)."""
    if not isinstance(t, dict):
        return True
    typ = t.get("type")
    if typ is None or typ == "custom":
        return p.supports_tool_search or t.get("name") != PLACEHOLDER_TOOL
    allowed_types = tuple(p.allowed_tool_types)
    return isinstance(typ, str) and bool(allowed_types) and typ.startswith(allowed_types)


def _history_has_tool_blocks(body: dict) -> bool:
    for m in body.get("messages") or ():
        content = m.get("content") if isinstance(m, dict) else None
        if isinstance(content, list):
            for b in content:
                if isinstance(b, dict) and b.get("type") in ("tool_use", "tool_result"):
                    return True
    return False


def _tools(body: dict, ctx: _Ctx) -> dict:
    """Remove server tools and tool extras Bedrock rejects; keep ``tool_choice`` consistent.

    ``DeferredToolPlaceholder`` is removed unless the profile supports tool search,
    with one exception: when it is the only tool left and the messages hold
    ``tool_use``/``tool_result`` blocks it stays (rebuilt like any custom tool, so
    without ``defer_loading``; no repair of its own), because Anthropic's validation
    rejects such a history without ``tools`` ("Requests which include tool_use or
    tool_result blocks must define tools", anthropics/anthropic-sdk-python #494;
    Converse says the same about ``toolConfig``).  ``tool_choice`` then goes unless
    it is ``auto`` or ``none``, so the model is never pushed to call it.  When only
    server tools were sent (or ``tools: []``) nothing is invented: ``tools`` goes,
    and such a history may still be rejected upstream.
    """
    p = ctx.profile
    tools = body.get("tools")
    if tools is None:
        if "tool_choice" in body:
            ctx.repair("tool_choice")
            return _without(body, "tool_choice")
        return body
    if not isinstance(tools, list):
        return body
    if not tools:
        ctx.repair("tools.empty")
        return _without(body, "tools", "tool_choice")
    removed: set = set()
    allowed_types = tuple(p.allowed_tool_types)
    keep_placeholder = (
        not p.supports_tool_search
        and not any(_tool_kept(t, p) for t in tools)
        and _history_has_tool_blocks(body)
    )

    def fix(t: Any) -> Any:
        if not isinstance(t, dict):
            return t
        typ = t.get("type")
        if typ is None or typ == "custom":
            if not p.supports_tool_search and t.get("name") == PLACEHOLDER_TOOL:
                if keep_placeholder:
                    return _fix_custom_tool(t, ctx)
                ctx.repair("tool.placeholder")
                removed.add(PLACEHOLDER_TOOL)
                return _DROP
            return _fix_custom_tool(t, ctx)
        if isinstance(typ, str) and allowed_types and typ.startswith(allowed_types):
            return t
        # SERVER_TOOL_PREFIXES, bash_/computer_/text_editor_ not allowed by the profile,
        # and any other non-custom type: Bedrock does not run it.
        ctx.repair("server_tool." + _tool_kind(str(typ)))
        removed.add(t.get("name"))
        return _DROP

    new_tools = _map_list(tools, fix)
    if not new_tools:
        if "tool_choice" in body:
            ctx.repair("tool_choice")
        return _without(body, "tools", "tool_choice")
    body = _set(body, "tools", new_tools)
    tc = body.get("tool_choice")
    if isinstance(tc, dict) and (
        (tc.get("type") == "tool" and tc.get("name") in removed)
        or (keep_placeholder and tc.get("type") not in ("auto", "none"))
    ):
        ctx.repair("tool_choice")
        body = _without(body, "tool_choice")
    return body


def _tool_result_content(body: dict, ctx: _Ctx) -> dict:
    """Blocks in ``tool_result.content`` other than text/image/document/search_result -> text.

    ``tool_reference`` (Claude Code's ToolSearch result) becomes
    ``{"type":"text","text":"Tool loaded: <tool_name>"}`` unless the profile supports
    tool search.  String content stays a string.
    """
    keep_reference = ctx.profile.supports_tool_search

    def conv(b: Any) -> Any:
        if isinstance(b, str):
            ctx.repair("tool_result.str->text")
            return {"type": "text", "text": b}
        if not isinstance(b, dict):
            return b
        typ = b.get("type")
        if typ in TOOL_RESULT_BLOCK_TYPES or (typ == "tool_reference" and keep_reference):
            return b
        if typ == "tool_reference":
            ctx.repair("tool_reference->text")
            new = {"type": "text", "text": f"Tool loaded: {b.get('tool_name', '')}"}
        else:
            ctx.repair(f"tool_result.{typ}->text")
            text = b.get("text")
            if not isinstance(text, str):
                text = json.dumps(b, ensure_ascii=False, separators=(",", ":"))
            new = {"type": "text", "text": text}
        if "cache_control" in b:
            new["cache_control"] = b["cache_control"]
        return new

    def block(b: Any) -> Any:
        if isinstance(b, dict) and b.get("type") == "tool_result":
            content = b.get("content")
            if isinstance(content, list):
                new = _map_list(content, conv)
                if new is not content:
                    return _set(b, "content", new)
        return b

    return _map_messages(body, lambda m: _map_content(m, block))


def safe_tool_id(tool_id: Any) -> str:
    """Deterministic ``^[a-zA-Z0-9_-]+$`` form of a tool id (bad chars -> ``_`` + 8 hex of sha256)."""
    s = tool_id if isinstance(tool_id, str) else json.dumps(tool_id)
    if _TOOL_ID_RE.match(s):
        return s
    digest = hashlib.sha256(s.encode("utf-8")).hexdigest()[:8]
    return f"{_TOOL_ID_BAD.sub('_', s) or 'toolu'}_{digest}"


def _tool_ids(body: dict, ctx: _Ctx) -> dict:
    """Rewrite ``tool_use.id`` / ``tool_result.tool_use_id`` that Bedrock would reject.

    The rewrite is a pure function of the id, so both sides map the same way.
    """

    def block(b: Any) -> Any:
        if not isinstance(b, dict):
            return b
        typ = b.get("type")
        key = "id" if typ == "tool_use" else "tool_use_id" if typ == "tool_result" else None
        if key is None or key not in b:
            return b
        old = b[key]
        if isinstance(old, str) and _TOOL_ID_RE.match(old):
            return b
        ctx.repair("tool_id")
        return _set(b, key, safe_tool_id(old))

    return _map_messages(body, lambda m: _map_content(m, block))


def _check_url_sources(body: dict, ctx: _Ctx) -> dict:
    """Image/document ``source.type:"url"`` cannot be sent to Bedrock: 400 to the client
    (profiles that accept URL sources, such as the GPT/Gemini pivot, let them pass)."""
    if ctx.profile.accepts_url_sources:
        return body

    def check(blocks: list) -> None:
        for b in blocks:
            if not isinstance(b, dict):
                continue
            typ = b.get("type")
            if typ in ("image", "document"):
                src = b.get("source")
                if isinstance(src, dict) and src.get("type") == "url":
                    raise SanitizeError(IMAGE_URL_ERROR if typ == "image" else DOCUMENT_URL_ERROR)
            elif typ == "tool_result" and isinstance(b.get("content"), list):
                check(b["content"])

    for m in body.get("messages") or ():
        if isinstance(m, dict) and isinstance(m.get("content"), list):
            check(m["content"])
    return body


def _drop_blank_blocks(blocks: list, ctx: _Ctx) -> list:
    """Drop empty/whitespace-only text blocks (also inside tool_result content).

    A ``cache_control`` on a dropped block moves to the previous kept block when
    that one can carry it: the cached prefix is the same (an empty text adds nothing).
    """
    out = None
    for i, b in enumerate(blocks):
        if _is_blank_text(b):
            if out is None:
                out = blocks[:i]
            ctx.repair("empty_text_dropped")
            cc = b.get("cache_control")
            if cc is not None and out:
                prev = out[-1]
                if (
                    isinstance(prev, dict)
                    and "cache_control" not in prev
                    and prev.get("type") not in _THINKING_BLOCKS
                ):
                    ctx.repair("cache_control.moved")
                    out[-1] = {**prev, "cache_control": cc}
            continue
        new = b
        if isinstance(b, dict) and b.get("type") == "tool_result" and isinstance(b.get("content"), list):
            inner = _drop_blank_blocks(b["content"], ctx)
            if inner is not b["content"]:
                new = _set(b, "content", inner) if inner else _without(b, "content")
        if new is not b and out is None:
            out = blocks[:i]
        if out is not None:
            out.append(new)
    return blocks if out is None else out


def _mergeable(a: Any, b: Any) -> bool:
    """Two messages that can become one: same user/assistant role, string or list content."""
    return (
        isinstance(a, dict)
        and isinstance(b, dict)
        and _role(a) in ("user", "assistant")
        and _role(a) == _role(b)
        and isinstance(a.get("content"), (str, list))
        and isinstance(b.get("content"), (str, list))
    )


def _empty_text(body: dict, ctx: _Ctx) -> dict:
    """Drop empty text blocks in ``system`` and ``messages``, then messages left empty.

    A message left empty is dropped (``empty_message_dropped``):

    * in the middle of the history, always; when its two kept neighbours then have
      the same role they become one message, their content blocks concatenated in
      order (string content becomes a text block first).  Only neighbours made
      adjacent by a drop are merged; nothing is reordered, thinking blocks are
      kept as they are;
    * at the end, when the message before the dropped run is a user message or the
      run is a single assistant message (an empty prefill);
    * at the start, when the conversation then still starts with a user message.

    Otherwise ``SanitizeError``: the conversation would become empty, would start
    with an assistant message, or would end with an assistant message that was not
    the client's last turn (an empty last user message would turn it into a prefill).
    """
    system = body.get("system")
    if isinstance(system, str) and not system.strip():
        ctx.repair("empty_text_dropped")
        body = _without(body, "system")
    elif isinstance(system, list):
        new_sys = _drop_blank_blocks(system, ctx)
        if not new_sys:
            body = _without(body, "system")
        elif new_sys is not system:
            body = _set(body, "system", new_sys)

    msgs = body.get("messages")
    if not isinstance(msgs, list):
        return body
    cleaned: list = []
    changed = False
    for m in msgs:
        if not isinstance(m, dict):
            cleaned.append(m)
            continue
        content = m.get("content")
        if isinstance(content, str):
            nm = None if not content.strip() else m
        elif isinstance(content, list):
            nc = _drop_blank_blocks(content, ctx)
            nm = None if not nc else (m if nc is content else _set(m, "content", nc))
        else:
            nm = m
        changed = changed or nm is not m
        cleaned.append(nm)
    if not changed:
        return body
    if all(m is None for m in cleaned):
        raise SanitizeError(
            "messages: every message is empty (text content blocks must be non-empty)"
        )
    n = len(msgs)
    first = next(k for k, m in enumerate(cleaned) if m is not None)
    last = max(k for k, m in enumerate(cleaned) if m is not None)
    if first > 0:
        if _role(msgs[first]) != "user":
            raise SanitizeError(
                "messages.0: message content is empty (text content blocks must be non-empty) "
                "and the conversation cannot start with an assistant message"
            )
        ctx.repair("empty_message_dropped")
    if last < n - 1:
        if not (_role(msgs[last]) == "user" or (last == n - 2 and _role(msgs[-1]) == "assistant")):
            raise SanitizeError(
                f"messages.{last + 1}: message content is empty (text content blocks must be "
                "non-empty) and removing it would leave an assistant message last"
            )
        ctx.repair("empty_message_dropped")
    out: list = []
    dropped = False
    for m in cleaned[first : last + 1]:
        if m is None:
            dropped = True
            continue
        if dropped:
            dropped = False
            ctx.repair("empty_message_dropped")
            prev = out[-1]
            if _mergeable(prev, m):
                out[-1] = _set(prev, "content", _as_blocks(prev["content"]) + _as_blocks(m["content"]))
                continue
        out.append(m)
    return _set(body, "messages", out)


def _prefill(body: dict, ctx: _Ctx) -> dict:
    """Models without prefill: drop an empty trailing assistant message, else 400."""
    if ctx.profile.accepts_prefill:
        return body
    msgs = body.get("messages")
    if not isinstance(msgs, list) or not msgs or _role(msgs[-1]) != "assistant":
        return body
    if _content_is_empty(msgs[-1].get("content")):
        ctx.repair("prefill_dropped")
        return _set(body, "messages", msgs[:-1])
    raise SanitizeError(PREFILL_ERROR)


def _normalise_cc(cc: dict, ctx: _Ctx) -> dict:
    """``cache_control`` reduced to ``{type[, ttl]}``; the same object when already so."""
    ttl = cc.get("ttl")
    keep_ttl = ttl in CACHE_TTLS and (ttl != "1h" or ctx.profile.accepts_ttl_1h)
    extras = [k for k in cc if k not in ("type", "ttl")]
    if not extras and "type" in cc and ("ttl" not in cc or keep_ttl):
        return cc
    for k in extras:
        ctx.repair(f"cache_control.{k}")
    if "ttl" in cc and not keep_ttl:
        ctx.repair("cache_control.ttl")
    new = {"type": cc.get("type", "ephemeral")}
    if keep_ttl:
        new["ttl"] = ttl
    return new


def _cache_sites(body: dict) -> list:
    """Every ``cache_control`` in processing order tools -> system -> messages.

    Items: ``(path, cache_control, in_head, on_thinking)`` where ``in_head`` marks
    tools/system breakpoints.
    """
    sites = []
    for section in ("tools", "system"):
        items = body.get(section)
        if isinstance(items, list):
            for i, t in enumerate(items):
                if isinstance(t, dict) and "cache_control" in t:
                    sites.append(((section, i), t["cache_control"], True, False))
    for mi, m in enumerate(body.get("messages") or ()):
        content = m.get("content") if isinstance(m, dict) else None
        if not isinstance(content, list):
            continue
        for bi, b in enumerate(content):
            if not isinstance(b, dict):
                continue
            if "cache_control" in b:
                path = ("messages", mi, "content", bi)
                sites.append((path, b["cache_control"], False, b.get("type") in _THINKING_BLOCKS))
            inner = b.get("content")
            if b.get("type") == "tool_result" and isinstance(inner, list):
                for ci, ib in enumerate(inner):
                    if isinstance(ib, dict) and "cache_control" in ib:
                        path = ("messages", mi, "content", bi, "content", ci)
                        sites.append((path, ib["cache_control"], False, False))
    return sites


def _cache_control(body: dict, ctx: _Ctx) -> dict:
    """One pass over all breakpoints: shape, TTL, TTL order, thinking, at most 4.

    Each ``cache_control`` becomes ``{type[, ttl]}`` (``scope`` and other keys go);
    ``ttl`` stays when it is ``5m`` or (if the profile accepts it) ``1h``; a ``1h``
    after a ``5m`` in the order tools -> system -> messages becomes ``5m``; none on
    thinking blocks; with more than 4, those on tools/system are kept first (the
    latest of them if they alone exceed 4), then the latest message ones.
    Valid breakpoints are never removed otherwise.
    """
    sites = _cache_sites(body)
    if not sites:
        return body
    decisions: list = []
    for _path, cc, _head, on_thinking in sites:
        if on_thinking:
            ctx.repair("cache_control.thinking")
            decisions.append(None)
        elif not isinstance(cc, dict):
            ctx.repair("cache_control.invalid")
            decisions.append(None)
        else:
            decisions.append(_normalise_cc(cc, ctx))
    kept = [k for k, d in enumerate(decisions) if d is not None]
    if len(kept) > MAX_CACHE_BREAKPOINTS:
        head = [k for k in kept if sites[k][2]]
        tail = [k for k in kept if not sites[k][2]]
        if len(head) >= MAX_CACHE_BREAKPOINTS:
            keep = set(head[len(head) - MAX_CACHE_BREAKPOINTS :])
        else:
            room = MAX_CACHE_BREAKPOINTS - len(head)
            keep = set(head) | set(tail[len(tail) - room :])
        for k in kept:
            if k not in keep:
                decisions[k] = None
        ctx.repair("cache_control.limit")
    seen_5m = False
    for k, d in enumerate(decisions):
        if d is None:
            continue
        if d.get("ttl") == "1h":
            if seen_5m:
                ctx.repair("cache_control.ttl_order")
                decisions[k] = {kk: vv for kk, vv in d.items() if kk != "ttl"}
        else:
            seen_5m = True
    cow = _Cow(body)
    for (path, cc, _head, _thinking), d in zip(sites, decisions):
        if d is None:
            del cow.mut(path)["cache_control"]
        elif d is not cc:
            cow.mut(path)["cache_control"] = d
    return cow.result()


def _extra_strip(body: dict, ctx: _Ctx) -> dict:
    """Remove the paths learned by self-healing (applied last, on the Bedrock body)."""
    if not ctx.extra_strip:
        return body
    body, hits = strip_paths(body, ctx.extra_strip)
    for spec in hits:
        ctx.repair("healed:" + spec)
    return body


Step = Callable[[dict, _Ctx], dict]

# The order matters: folding comes before empty-text dropping (folded text may be
# empty); max_tokens is clamped before the thinking budget; empty messages go
# before the prefill check; cache_control runs after every step that moves,
# adds or drops blocks; learned paths go last because they were learned on the
# sanitized body.
STEPS: Tuple[Step, ...] = (
    _envelope,
    _strip_top_level,
    _fold_system_messages,
    _message_keys,
    _check_url_sources,
    _max_tokens,
    _thinking,
    _sampling,
    _tools,
    _thinking_with_tools,
    _tool_result_content,
    _tool_ids,
    _empty_text,
    _prefill,
    _cache_control,
    _extra_strip,
)


def sanitize_bedrock(
    body: dict,
    *,
    betas: Iterable[str],
    profile: ModelProfile,
    extra_strip: Iterable[str] = (),
) -> SanitizeResult:
    """Anthropic Messages ``body`` -> body for Bedrock ``/invoke`` under ``profile``.

    ``betas``: the client's ``anthropic-beta`` values (split or comma-joined; a body
    ``anthropic_beta`` list is merged too).  ``extra_strip``: learned path specs
    (module docstring).  Raises :class:`SanitizeError` (a ``ValueError``, meant as a
    400 for the client) when the request cannot be made valid.  Never mutates ``body``.
    """
    if not isinstance(body, dict):
        raise SanitizeError("request body must be a JSON object")
    ctx = _Ctx(profile, tuple(betas or ()), tuple(extra_strip or ()))
    for step in STEPS:
        body = step(body, ctx)
    return SanitizeResult(body=body, repairs=ctx.repairs)
