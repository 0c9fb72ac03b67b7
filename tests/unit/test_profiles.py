"""Tests for app.translate.profiles: defaults per SAP model name, name parsing, overrides."""

from __future__ import annotations

import dataclasses

import pytest

from app.translate.profiles import KNOWN_BETAS, ModelProfile, parse_model_name, profile_for

#   name                              max     thinking    prefill ttl1h  1m     top_p_drop
TABLE = [
    ("anthropic--claude-3.7-sonnet", 64000, "enabled", True, False, False, False),
    ("anthropic--claude-4-sonnet", 64000, "enabled", True, False, True, False),
    ("anthropic--claude-4-opus", 32000, "enabled", True, False, False, False),
    ("anthropic--claude-4.1-opus", 32000, "enabled", True, False, False, True),
    ("anthropic--claude-4.5-sonnet", 64000, "enabled", True, True, True, True),
    ("anthropic--claude-4.5-haiku", 64000, "enabled", True, True, False, True),
    ("anthropic--claude-4.5-opus", 64000, "enabled", True, True, False, True),
    ("anthropic--claude-4.6-sonnet", 64000, "both", False, True, False, True),
    ("anthropic--claude-4.6-opus", 128000, "both", False, True, False, True),
    ("anthropic--claude-4.7-opus", 128000, "adaptive", False, True, False, True),
]


@pytest.mark.parametrize("name, max_out, thinking, prefill, ttl, ctx1m, top_p", TABLE)
def test_defaults_per_model(name, max_out, thinking, prefill, ttl, ctx1m, top_p):
    p = profile_for(name)
    assert p.name == name
    assert p.max_output_tokens == max_out
    assert p.thinking_mode == thinking
    assert p.accepts_prefill is prefill
    assert p.accepts_ttl_1h is ttl
    assert p.context_1m is ctx1m
    assert p.drop_top_p_with_temperature is top_p
    # conservative everywhere by default
    assert not p.supports_tool_search and not p.accepts_context_management and not p.accepts_output_config
    assert p.strip_fields >= {"safeguards", "service_tier", "container", "mcp_servers"}
    assert not p.strip_schema_keyword and p.allowed_tool_types == frozenset()


def test_betas_by_default():
    p = profile_for("anthropic--claude-4.5-sonnet")
    assert p.beta_allowed("interleaved-thinking-2025-05-14")
    assert p.beta_allowed("fine-grained-tool-streaming-2025-05-14")
    assert p.beta_allowed("context-1m-2025-08-07")
    for beta in ("tool-search-tool-2025-10-19", "tool-examples-2025-10-29", "claude-code-20250219",
                 "context-management-2025-06-27", "effort-2025-11-24", "extended-cache-ttl-2025-04-11",
                 "advanced-tool-use-2025-11-20", "thinking-token-count-2026-05-13"):
        assert not p.beta_allowed(beta), beta
    assert p.beta_renames["advanced-tool-use-2025-11-20"] == "tool-search-tool-2025-10-19"
    assert not profile_for("anthropic--claude-4.5-opus").beta_allowed("context-1m-2025-08-07")
    assert not profile_for("anthropic--claude-3.7-sonnet").beta_allowed("interleaved-thinking-2025-05-14")


def test_gated_betas_follow_flags():
    p = profile_for("anthropic--claude-4.5-sonnet", {"supports_tool_search": True})
    assert p.beta_allowed("tool-search-tool-2025-10-19") and p.beta_allowed("tool-examples-2025-10-29")
    p = profile_for("anthropic--claude-4.6-opus", {
        "accepts_context_management": True,
        "allowed_betas": sorted(KNOWN_BETAS | {"context-management-2025-06-27"})})
    assert p.beta_allowed("context-management-2025-06-27")
    p = profile_for("anthropic--claude-4.6-opus", {"allowed_betas": ["context-management-2025-06-27"]})
    assert not p.beta_allowed("context-management-2025-06-27")  # flag still off


@pytest.mark.parametrize("name, parsed", [
    ("anthropic--claude-4.5-sonnet", ("sonnet", (4, 5))),
    ("anthropic--claude-4-opus", ("opus", (4, 0))),
    ("anthropic--claude-3.7-sonnet", ("sonnet", (3, 7))),
    ("claude-3-7-sonnet-20250219", ("sonnet", (3, 7))),
    ("claude-sonnet-4-5-20250929", ("sonnet", (4, 5))),
    ("claude-sonnet-4-20250514", ("sonnet", (4, 0))),
    ("claude-opus-4-1", ("opus", (4, 1))),
    ("claude-haiku-4-5", ("haiku", (4, 5))),
    ("anthropic--claude-3-haiku", ("haiku", (3, 0))),
    ("anthropic--claude-sonnet-next", ("sonnet", None)),
    ("gpt-5", (None, None)),
    ("", (None, None)),
])
def test_parse_model_name(name, parsed):
    assert parse_model_name(name) == parsed


@pytest.mark.parametrize("name, max_out", [("claude-sonnet-4-6", 64000), ("anthropic--claude-sonnet-4.6", 64000),
                                           ("claude-opus-4-6", 128000)])
def test_46_max_output_tokens_for_modern_names(name, max_out):
    assert profile_for(name).max_output_tokens == max_out


def test_unknown_newer_model_follows_the_rules_conservatively():
    p = profile_for("anthropic--claude-4.9-opus")
    assert p.version == (4, 9) and p.thinking_mode == "adaptive" and not p.accepts_prefill
    assert p.max_output_tokens == 32000


def test_unparsable_name_is_conservative():
    p = profile_for("anthropic--claude-mystery")
    assert p.version is None
    assert p.max_output_tokens == 32000 and p.thinking_mode == "enabled"
    assert not p.accepts_ttl_1h and not p.context_1m and p.accepts_prefill
    assert not p.beta_allowed("context-1m-2025-08-07")


def test_old_models_have_no_thinking():
    assert profile_for("anthropic--claude-3.5-sonnet").thinking_mode == "none"
    assert profile_for("anthropic--claude-3-haiku").max_output_tokens == 4096


def test_overrides_replace_fields_and_coerce_types():
    p = profile_for("anthropic--claude-4.5-sonnet", {
        "max_output_tokens": 32000, "allowed_betas": ["interleaved-thinking-2025-05-14"],
        "accepts_output_config": True, "strip_fields": ["safeguards"], "beta_renames": {"a": "b"},
        "thinking_mode": "both"})
    assert p.max_output_tokens == 32000
    assert p.allowed_betas == frozenset({"interleaved-thinking-2025-05-14"})
    assert p.accepts_output_config is True
    assert p.strip_fields == frozenset({"safeguards"})
    assert dict(p.beta_renames) == {"a": "b"}
    assert p.thinking_mode == "both"
    assert profile_for("anthropic--claude-4.5-sonnet", {}) == profile_for("anthropic--claude-4.5-sonnet")


@pytest.mark.parametrize("overrides, match", [
    ({"max_output_token": 1}, "unknown model profile field"),
    ({"accepts_ttl_1h": "yes"}, "true or false"),
    ({"thinking_mode": "sometimes"}, "thinking_mode"),
    ({"max_output_tokens": 0}, "max_output_tokens"),
])
def test_bad_overrides(overrides, match):
    with pytest.raises(ValueError, match=match):
        profile_for("anthropic--claude-4.5-sonnet", overrides)


def test_profile_is_immutable():
    p = profile_for("anthropic--claude-4.5-sonnet")
    with pytest.raises(dataclasses.FrozenInstanceError):
        p.max_output_tokens = 1  # type: ignore[misc]
    with pytest.raises(TypeError):
        p.beta_renames["x"] = "y"  # type: ignore[index]
    assert isinstance(p, ModelProfile)
