"""Per-model facts for Claude on Bedrock behind SAP AI Core (data, not code).

This module owns :class:`ModelProfile` -- what one SAP Claude model accepts on
``/invoke`` -- and :func:`profile_for`, which derives a profile from an SAP model
name (``anthropic--claude-4.5-sonnet``) plus optional overrides from the user's
configuration.  The sanitizer (``sanitize.py``) reads these facts; it has no
model names of its own.  Pure: stdlib only, no I/O, no config reads.

Sources: ``sap-ai-core.md`` section 7 (what Bedrock on AI Core rejects) and
``clients-and-pain-points.md`` section 5.  Entries marked "unverified" there are
conservative here (off by default) and can be switched on per deployment with
``overrides``.
"""

from __future__ import annotations

import dataclasses
import re
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Iterable, Mapping, Optional, Tuple

from app.translate.token_count import NEW_TOKENIZER_SCALE

__all__ = [
    "ModelProfile",
    "profile_for",
    "parse_model_name",
    "KNOWN_BETAS",
    "BETA_RENAMES",
    "BETA_GATES",
    "DEFAULT_STRIP_FIELDS",
    "THINKING_MODES",
]

# Betas known to be usable on Bedrock (sap-ai-core.md section 7).  Some of them are
# only sent when the matching profile flag is on, see BETA_GATES.
KNOWN_BETAS = frozenset(
    {
        "interleaved-thinking-2025-05-14",
        "fine-grained-tool-streaming-2025-05-14",
        "context-1m-2025-08-07",
        "tool-search-tool-2025-10-19",
        "tool-examples-2025-10-29",
    }
)

# Client beta -> Bedrock beta.
BETA_RENAMES: Mapping[str, str] = MappingProxyType(
    {"advanced-tool-use-2025-11-20": "tool-search-tool-2025-10-19"}
)

# A beta in this table is forwarded only when the named profile flag is true, even
# if it is in ``allowed_betas``; this keeps the beta list and the body consistent
# when a flag is overridden (e.g. no tool-search beta while defer_loading is
# stripped).  context-management / effort are not in the default allow-list; an
# operator who turns the flag on and adds the beta to allowed_betas gets both.
BETA_GATES: Mapping[str, str] = MappingProxyType(
    {
        "context-1m-2025-08-07": "context_1m",
        "tool-search-tool-2025-10-19": "supports_tool_search",
        "tool-examples-2025-10-29": "supports_tool_search",
        "context-management-2025-06-27": "accepts_context_management",
        "effort-2025-11-24": "accepts_output_config",
    }
)

# Top-level request keys that are not Bedrock features (always removed).
DEFAULT_STRIP_FIELDS = frozenset({"safeguards", "service_tier", "container", "mcp_servers"})

# 'enabled'  : needs {"type":"enabled","budget_tokens":N} (adaptive is converted)
# 'adaptive' : needs {"type":"adaptive"} (Opus 4.7+ style; enabled is converted)
# 'both'     : accepts either (4.6 models)
# 'none'     : no extended thinking at all (Claude 3.0/3.5); ``thinking`` is dropped
THINKING_MODES = frozenset({"enabled", "adaptive", "both", "none"})

Version = Tuple[int, int]


@dataclass(frozen=True)
class ModelProfile:
    """What one Claude model on Bedrock/SAP AI Core accepts.

    ``allowed_betas`` is intersected with ``BETA_GATES``: a gated beta is sent
    only if its flag is true.  ``thinking_budget_tokens`` is the budget used when
    an ``adaptive`` request is converted to ``enabled`` (then clamped to
    ``[1024, max_tokens - 1]``; 31999 is what Claude Code itself sends with
    ``max_tokens`` 32000).
    """

    name: str = ""
    family: Optional[str] = None  # 'sonnet' | 'opus' | 'haiku' | None
    version: Optional[Version] = None  # (4, 5) for 4.5, (4, 0) for 4
    max_output_tokens: int = 32000
    thinking_mode: str = "enabled"
    thinking_budget_tokens: int = 31999
    allowed_betas: frozenset = KNOWN_BETAS
    beta_renames: Mapping[str, str] = field(default_factory=lambda: BETA_RENAMES)
    accepts_context_management: bool = False
    accepts_output_config: bool = False
    accepts_ttl_1h: bool = False
    accepts_prefill: bool = True
    supports_tool_search: bool = False
    allowed_tool_types: frozenset = frozenset()  # type prefixes kept: 'bash_', 'computer_', 'text_editor_'
    strip_fields: frozenset = DEFAULT_STRIP_FIELDS
    strip_schema_keyword: bool = False  # remove top-level "$schema" from tool input_schema
    drop_top_p_with_temperature: bool = False
    context_1m: bool = False
    # Claude's rules for a request with thinking on: no forced tool_choice, a tool loop
    # continues only after its thinking block, temperature 1, no top_k, top_p >= 0.95.
    # Off for the neutral profile the GPT/Gemini pivot is normalised with.
    thinking_constraints: bool = True
    # Image/document sources given by URL (Bedrock takes base64 only: a clear 400 instead).
    accepts_url_sources: bool = False
    context_window: int = 200_000  # input tokens; 1,000,000 with the context-1m beta where allowed
    token_scale: float = 1.0  # count_tokens estimate factor: NEW_TOKENIZER_SCALE from Opus 4.7 on

    def __post_init__(self) -> None:
        if self.thinking_mode not in THINKING_MODES:
            raise ValueError(
                f"thinking_mode must be one of {sorted(THINKING_MODES)}, got {self.thinking_mode!r}"
            )
        if not isinstance(self.max_output_tokens, int) or self.max_output_tokens < 1:
            raise ValueError(f"max_output_tokens must be a positive int, got {self.max_output_tokens!r}")

    def input_window(self, client_betas: Iterable[str]) -> int:
        """The model's context in input tokens for a request with ``client_betas``."""
        if self.context_1m and "context-1m-2025-08-07" in client_betas:
            return 1_000_000
        return self.context_window

    def beta_allowed(self, beta: str) -> bool:
        """True if ``beta`` (after renaming) may be sent to this model."""
        if beta not in self.allowed_betas:
            return False
        gate = BETA_GATES.get(beta)
        return gate is None or bool(getattr(self, gate))


#: What an Anthropic body is normalised to before it is translated for GPT or Gemini
#: (app/backends.py): everything only Claude understands is folded or removed, but
#: thinking (adaptive or budget), effort and sampling stay for the translators to map,
#: and Claude's own constraints on thinking next to tools do not apply.
PIVOT_PROFILE = ModelProfile(name="pivot", max_output_tokens=1_000_000, thinking_mode="both",
                             allowed_betas=frozenset(), accepts_output_config=True,
                             strip_schema_keyword=True, thinking_constraints=False,
                             accepts_url_sources=True)


# Known maximum output tokens per (family, version).  Versions not in this table
# get the conservative UNKNOWN_MAX_OUTPUT_TOKENS (Claude Code asks 32000 for
# model names it does not know anyway).
MAX_OUTPUT_TOKENS: Mapping[Tuple[str, Version], int] = MappingProxyType(
    {
        ("haiku", (3, 0)): 4096,
        ("opus", (3, 0)): 4096,
        ("sonnet", (3, 0)): 4096,
        ("haiku", (3, 5)): 8192,
        ("sonnet", (3, 5)): 8192,
        ("sonnet", (3, 7)): 64000,  # 128000 with a beta: ignored
        ("sonnet", (4, 0)): 64000,
        ("opus", (4, 0)): 32000,
        ("opus", (4, 1)): 32000,
        ("sonnet", (4, 5)): 64000,
        ("haiku", (4, 5)): 64000,
        ("opus", (4, 5)): 64000,
        ("sonnet", (4, 6)): 64000,
        ("opus", (4, 6)): 128000,
        ("opus", (4, 7)): 128000,
    }
)
UNKNOWN_MAX_OUTPUT_TOKENS = 32000

_FAMILIES = ("sonnet", "opus", "haiku")
# anthropic--claude-4.5-sonnet, anthropic--claude-4-opus, claude-3-7-sonnet
_LEGACY_RE = re.compile(r"claude-(\d+)(?:[.-](\d))?-(sonnet|opus|haiku)\b")
# claude-sonnet-4-5, claude-opus-4.1, claude-haiku-4-5-20251001 (minor is one digit, so dates never match)
_MODERN_RE = re.compile(r"claude-(sonnet|opus|haiku)-(\d+)(?:[.-](\d)(?!\d))?")


def parse_model_name(name: str) -> Tuple[Optional[str], Optional[Version]]:
    """``anthropic--claude-4.5-sonnet`` -> ``('sonnet', (4, 5))``; unknown -> ``(None, None)``."""
    low = (name or "").lower()
    m = _LEGACY_RE.search(low)
    if m:
        return m.group(3), (int(m.group(1)), int(m.group(2) or 0))
    m = _MODERN_RE.search(low)
    if m:
        return m.group(1), (int(m.group(2)), int(m.group(3) or 0))
    for fam in _FAMILIES:
        if fam in low:
            return fam, None
    return None, None


def _defaults(name: str, family: Optional[str], version: Optional[Version]) -> dict:
    """Rule-based defaults for a parsed model name."""
    if version is None:
        # Unparsable: conservative.  'enabled' thinking works on every model up to 4.6.
        return dict(name=name, family=family, version=None)
    v = version
    if v < (3, 7):
        thinking_mode = "none"
    elif v < (4, 6):
        thinking_mode = "enabled"
    elif v < (4, 7):
        thinking_mode = "both"
    else:
        thinking_mode = "adaptive"
    if v < (3, 7):
        betas = frozenset({"fine-grained-tool-streaming-2025-05-14"}) if v >= (3, 5) else frozenset()
    elif v < (4, 0):
        # interleaved thinking is a Claude 4 feature
        betas = frozenset({"fine-grained-tool-streaming-2025-05-14"})
    else:
        betas = KNOWN_BETAS
    return dict(
        name=name,
        family=family,
        version=v,
        max_output_tokens=MAX_OUTPUT_TOKENS.get((family, v), UNKNOWN_MAX_OUTPUT_TOKENS),
        thinking_mode=thinking_mode,
        allowed_betas=betas,
        accepts_ttl_1h=v >= (4, 5),
        accepts_prefill=v < (4, 6),
        drop_top_p_with_temperature=v >= (4, 1),
        context_1m=family == "sonnet" and (4, 0) <= v <= (4, 5),
        token_scale=NEW_TOKENIZER_SCALE if v >= (4, 7) else 1.0,
    )


_FIELDS = {f.name: f for f in dataclasses.fields(ModelProfile)}
_FROZENSET_FIELDS = frozenset({"allowed_betas", "allowed_tool_types", "strip_fields"})
_BOOL_FIELDS = frozenset(n for n, f in _FIELDS.items() if f.type in ("bool", bool))


def _coerce(key: str, value: Any) -> Any:
    if key in _FROZENSET_FIELDS:
        if isinstance(value, str):
            value = [value]
        return frozenset(str(v) for v in value)
    if key == "beta_renames":
        return MappingProxyType(dict(value))
    if key == "version" and value is not None:
        return tuple(value)
    if key in _BOOL_FIELDS and not isinstance(value, bool):
        raise ValueError(f"model profile field {key!r} must be true or false, got {value!r}")
    return value


def profile_for(sap_model_name: str, overrides: Optional[Mapping[str, Any]] = None) -> ModelProfile:
    """Default profile for an SAP model name, with ``overrides`` replacing fields.

    ``overrides`` comes from the user's config, e.g.
    ``{"max_output_tokens": 32000, "allowed_betas": [...], "accepts_output_config": True}``;
    lists become frozensets.  Unknown keys raise ``ValueError`` (a typo in the
    config should be loud, not silently ignored).
    """
    family, version = parse_model_name(sap_model_name)
    values = _defaults(sap_model_name, family, version)
    for key, value in (overrides or {}).items():
        if key not in _FIELDS:
            raise ValueError(
                f"unknown model profile field {key!r}; valid fields: {', '.join(sorted(_FIELDS))}"
            )
        values[key] = _coerce(key, value)
    return ModelProfile(**values)
