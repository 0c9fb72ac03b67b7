"""Client model ids -> SAP model names."""

from __future__ import annotations

import pytest

from app.model_names import family_of, parse_claude, resolve

AVAILABLE = {"anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-haiku",
             "anthropic--claude-4-sonnet", "anthropic--claude-4.1-opus",
             "anthropic--claude-3.7-sonnet", "gpt-5.4"}


@pytest.mark.parametrize("client_id,sap,fallback", [
    ("anthropic--claude-4.5-sonnet", "anthropic--claude-4.5-sonnet", False),
    ("4.5-sonnet", "anthropic--claude-4.5-sonnet", False),
    ("claude-sonnet-4-5-20250929", "anthropic--claude-4.5-sonnet", False),
    ("claude-sonnet-4-5", "anthropic--claude-4.5-sonnet", False),
    ("claude-sonnet-4-5[1m]", "anthropic--claude-4.5-sonnet", False),
    ("claude-haiku-4-5-20251001", "anthropic--claude-4.5-haiku", False),
    ("claude-sonnet-4-20250514", "anthropic--claude-4-sonnet", False),
    ("claude-3-7-sonnet-20250219", "anthropic--claude-3.7-sonnet", False),
    ("claude-3-7-sonnet-latest", "anthropic--claude-3.7-sonnet", False),
    ("us.anthropic.claude-sonnet-4-5-20250929-v1:0", "anthropic--claude-4.5-sonnet", False),
    ("claude-opus-4-1", "anthropic--claude-4.1-opus", False),
    ("claude-opus-5-5", "anthropic--claude-4.1-opus", True),
    ("claude-haiku-5-5", "anthropic--claude-4.5-haiku", True),
    ("claude-3-5-haiku-20241022", "anthropic--claude-4.5-haiku", True),
    ("claude-sonnet-4-6", "anthropic--claude-4.5-sonnet", True),
    ("gpt-5.4", "gpt-5.4", False),
])
def test_resolution(client_id, sap, fallback):
    resolution = resolve(client_id, AVAILABLE)
    assert resolution is not None
    assert (resolution.sap_name, resolution.fallback) == (sap, fallback)
    assert resolution.wants_1m == client_id.endswith("[1m]")


def test_never_crosses_families():
    only_opus = {"anthropic--claude-4.5-opus"}
    assert resolve("claude-haiku-4-5-20251001", only_opus) is None
    assert resolve("claude-sonnet-4-5", only_opus) is None
    only_haiku = {"anthropic--claude-4.5-haiku"}
    assert resolve("claude-opus-5-5", only_haiku) is None


def test_aliases_come_first():
    aliases = {"sonnet": "anthropic--claude-4.5-sonnet", "claude-opus-5-5": "anthropic--claude-4.5-sonnet"}
    assert resolve("sonnet", AVAILABLE, aliases).sap_name == "anthropic--claude-4.5-sonnet"
    assert resolve("claude-opus-5-5", AVAILABLE, aliases).fallback is False


@pytest.mark.parametrize("name", ["gpt-4o", "claude", "claude-sonnet", "hello-4-5", "",
                                  "claude-sonnet-4-5-extra", "../../v2/lm/deployments"])
def test_non_claude_or_garbage(name):
    assert resolve(name, AVAILABLE) is None


def test_families_and_ids():
    assert family_of("anthropic--claude-4.5-sonnet") == "claude"
    assert family_of("gpt-5.4") == "gpt" and family_of("o3-mini") == "gpt"
    assert family_of("gemini-2.5-pro") == "gemini" and family_of("mistral") == "other"
    parsed = parse_claude("anthropic--claude-4.5-sonnet")
    assert parsed.anthropic_id == "claude-sonnet-4-5"
    assert parsed.display_name == "Claude Sonnet 4.5"
