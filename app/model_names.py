"""Client model ids -> SAP AI Core model names, by rule (clients doc §5.2).

Accepted: SAP names (``anthropic--claude-4.5-sonnet``), the earlier proxy's short
names (``4.5-sonnet``), Claude Code's ids (``claude-sonnet-4-5-20250929``,
``claude-opus-5-5``, ``claude-3-7-sonnet-latest``, with or without ``[1m]``),
Bedrock-style ids (``us.anthropic.claude-sonnet-4-5-20250929-v1:0``) and
configured aliases. A Claude id whose exact version is not deployed falls back to
the newest deployed model **of the same family** (never haiku to opus).

Pure: stdlib only, no I/O.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Collection, Mapping

CLAUDE_PREFIX = "anthropic--claude-"
FAMILIES = ("haiku", "sonnet", "opus", "fable")

_DATE_SUFFIX = re.compile(r"-(?:\d{8}|latest)$")
_BEDROCK_PREFIX = re.compile(r"^(?:(?:us|eu|apac|global|jp|au)\.)?anthropic\.")
_BEDROCK_SUFFIX = re.compile(r"-v\d+(?::\d+)?$")
_VERSION_PART = re.compile(r"^\d+(?:\.\d+)?$")


@dataclass(frozen=True)
class Resolution:
    sap_name: str
    wants_1m: bool = False
    fallback: bool = False


@dataclass(frozen=True)
class ClaudeName:
    family: str
    version: tuple[int, ...]

    @property
    def sap_name(self) -> str:
        return CLAUDE_PREFIX + ".".join(map(str, self.version)) + "-" + self.family

    @property
    def anthropic_id(self) -> str:
        return "claude-" + self.family + "-" + "-".join(map(str, self.version))

    @property
    def display_name(self) -> str:
        return "Claude " + self.family.capitalize() + " " + ".".join(map(str, self.version))


def parse_claude(name: str) -> ClaudeName | None:
    """Family and version of any Claude-looking id, or None."""
    text = name.strip().lower()
    if text.endswith("[1m]"):
        text = text[:-4]
    text = _BEDROCK_PREFIX.sub("", text)
    text = _BEDROCK_SUFFIX.sub("", text)
    text = _DATE_SUFFIX.sub("", text)
    for prefix in (CLAUDE_PREFIX, "anthropic--", "claude-"):
        if text.startswith(prefix):
            text = text[len(prefix):]
            break
    family = None
    numbers: list[int] = []
    for part in text.split("-"):
        if part in FAMILIES and family is None:
            family = part
        elif _VERSION_PART.match(part):
            numbers.extend(int(p) for p in part.split("."))
        elif part:
            return None
    if family is None or not numbers or len(numbers) > 2:
        return None
    return ClaudeName(family, tuple(numbers))


def family_of(sap_name: str) -> str:
    """``claude`` / ``gpt`` / ``gemini`` / ``other`` for an SAP model name (spec §4)."""
    if sap_name.startswith("anthropic--"):
        return "claude"
    if sap_name.startswith(("gpt-", "o1", "o3", "o4-", "text-embedding-")):
        return "gpt"
    if sap_name.startswith("gemini-"):
        return "gemini"
    return "other"


def resolve(client_id: str, available: Collection[str],
            aliases: Mapping[str, str] | None = None) -> Resolution | None:
    """The SAP model for ``client_id`` among ``available`` SAP names, or None."""
    aliases = aliases or {}
    wants_1m = client_id.endswith("[1m]")
    bare = client_id[:-4] if wants_1m else client_id
    for candidate in (client_id, bare):
        target = aliases.get(candidate)
        if target is not None and target in available:
            return Resolution(target, wants_1m)
        if candidate in available:
            return Resolution(candidate, wants_1m)
    parsed = parse_claude(bare)
    if parsed is None:
        return None
    if parsed.sap_name in available:
        return Resolution(parsed.sap_name, wants_1m)
    newest = newest_of_family(parsed.family, available)
    if newest is None:
        return None
    return Resolution(newest, wants_1m, fallback=True)


def newest_of_family(family: str, available: Collection[str]) -> str | None:
    best: ClaudeName | None = None
    for name in available:
        if not name.startswith(CLAUDE_PREFIX):
            continue
        parsed = parse_claude(name)
        if parsed and parsed.family == family and (best is None or parsed.version > best.version):
            best = parsed
    return best.sap_name if best else None
