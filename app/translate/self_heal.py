"""Self-healing after an upstream 400: which field to remove before the one retry.

This module owns turning a Bedrock/SAP AI Core 400 message into a :class:`HealRule`
(:func:`rule_from_error`) and applying it to the body that was sent
(:func:`apply_rule`).  A rule is a set of paths in the syntax of
``sanitize.strip_paths`` (one implementation, shared); ``HealRule.key`` is that
path string, to be remembered per deployment and passed back to
``sanitize_bedrock(..., extra_strip=...)`` so later requests drop the field up
front (``sap-ai-core.md`` sections 6.6 and 7, principle 3).

Recognised messages:

* ``<path>: Extra inputs are not permitted`` (pydantic style, several per message
  possible).  List indices become ``*`` and union tags (``custom``, ``text``,
  ``enabled``, ``ephemeral`` ...) are dropped so the rule generalises:
  ``tools.2.custom.defer_loading`` -> ``tools.*.defer_loading``,
  ``messages.3.content.0.text.cache_control.scope`` ->
  ``messages.*.content.*.cache_control.scope``.
* ``#: extraneous key [k] is not permitted`` (older Bedrock validator, JSON
  pointer before the colon) -> ``k`` (``#/messages/0`` -> ``messages.*.k``).
* ``invalid beta flag`` -> ``anthropic_beta``: the whole beta list goes.  The
  upstream does not say which beta it rejected and there is only one retry, so
  the only retry sure to pass the beta check is one without betas.  Losing
  ``interleaved-thinking``/``fine-grained-tool-streaming`` degrades a request but
  never breaks it; the WARNING the caller logs says to fix the profile's
  ``allowed_betas``.

Rules that would remove something a request cannot live without (``messages``,
``max_tokens``, a block's ``type``/``text``/``signature``, a tool's ``name`` ...)
are refused: the 400 then goes to the client unchanged.

Pure: stdlib only.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Optional, Tuple

from .sanitize import parse_path, strip_paths

__all__ = ["HealRule", "rule_from_error", "apply_rule", "normalise_path", "UNION_TAGS"]

# Discriminator names pydantic-style validators insert into error locations.
UNION_TAGS = frozenset(
    {
        "custom",
        "text",
        "image",
        "document",
        "search_result",
        "tool_use",
        "tool_result",
        "tool_reference",
        "thinking",
        "redacted_thinking",
        "server_tool_use",
        "web_search_tool_result",
        "container_upload",
        "enabled",
        "disabled",
        "adaptive",
        "ephemeral",
        "base64",
        "url",
        "file",
        "auto",
        "any",
        "tool",
        "none",
    }
)

# Top-level paths never stripped, and last segments never stripped below the top level.
_PROTECTED_TOP = frozenset({"anthropic_version", "max_tokens", "messages"})
_PROTECTED_LEAF = frozenset(
    {
        "role",
        "content",
        "type",
        "text",
        "thinking",
        "signature",
        "data",
        "id",
        "tool_use_id",
        "name",
        "input",
        "input_schema",
        "source",
        "media_type",
    }
)

_EXTRA_INPUTS_RE = re.compile(r"([A-Za-z0-9_$.\-]+)\s*:\s*Extra inputs are not permitted")
_EXTRANEOUS_RE = re.compile(r"(#[^\s:]*)?\s*:?\s*extraneous key \[([^\]]+)\] is not permitted", re.I)
_INVALID_BETA_RE = re.compile(r"invalid beta flag", re.I)


@dataclass(frozen=True)
class HealRule:
    """Paths to remove (``sanitize`` path syntax) and why (``extra_inputs`` /
    ``extraneous_key`` / ``invalid_beta``)."""

    paths: Tuple[str, ...]
    reason: str

    @property
    def key(self) -> str:
        """The string to remember per deployment; ``extra_strip`` accepts it as is."""
        return ",".join(self.paths)


def normalise_path(raw: str) -> str:
    """``tools.2.custom.defer_loading`` -> ``tools.*.defer_loading``.

    Numeric segments become ``*``; a union tag (``UNION_TAGS``) is dropped when it
    is neither the first nor the last segment (``thinking.adaptive.display`` ->
    ``thinking.display``).  No real key in a Messages body both has children and
    is named like a tag, so this is unambiguous.
    """
    segs = [s for s in raw.strip().strip(".").split(".") if s]
    out = []
    for i, seg in enumerate(segs):
        if seg.isdigit():
            out.append("*")
        elif 0 < i < len(segs) - 1 and seg in UNION_TAGS:
            continue
        else:
            out.append(seg)
    return ".".join(out)


def _protected(path: str) -> bool:
    segs = path.split(".")
    if len(segs) == 1:
        return segs[0] in _PROTECTED_TOP
    return segs[-1] in _PROTECTED_LEAF


def _message_text(message: str) -> str:
    """The message from a JSON error body, or the text as is."""
    text = (message or "").strip()
    if text.startswith("{"):
        try:
            obj = json.loads(text)
        except ValueError:
            return text
        if isinstance(obj, dict):
            for key in ("message", "Message"):
                if isinstance(obj.get(key), str):
                    return obj[key]
            err = obj.get("error")
            if isinstance(err, dict) and isinstance(err.get("message"), str):
                return err["message"]
            if isinstance(err, str):
                return err
    return text


def rule_from_error(message: str) -> Optional[HealRule]:
    """A rule for a 400 message (or raw JSON error body), or None when it names nothing."""
    text = _message_text(message)
    if not text:
        return None
    if _INVALID_BETA_RE.search(text):
        return HealRule(paths=("anthropic_beta",), reason="invalid_beta")
    paths = []
    reason = ""
    for m in _EXTRA_INPUTS_RE.finditer(text):
        paths.append(normalise_path(m.group(1)))
        reason = reason or "extra_inputs"
    for m in _EXTRANEOUS_RE.finditer(text):
        pointer = (m.group(1) or "#").lstrip("#").strip("/")
        prefix = ".".join(s for s in pointer.split("/") if s)
        paths.append(normalise_path(f"{prefix}.{m.group(2)}" if prefix else m.group(2)))
        reason = reason or "extraneous_key"
    clean = []
    for p in paths:
        if not p or p in clean:
            continue
        try:
            parse_path(p)
        except ValueError:
            return None
        if _protected(p):
            return None
        clean.append(p)
    if not clean:
        return None
    return HealRule(paths=tuple(clean), reason=reason)


def apply_rule(body: dict, rule: HealRule) -> Optional[dict]:
    """``body`` without the rule's paths (copy-on-write), or None if nothing was removed."""
    new, hits = strip_paths(body, rule.paths)
    return new if hits else None
