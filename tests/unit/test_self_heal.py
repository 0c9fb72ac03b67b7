"""Tests for app.translate.self_heal: parsing the 400 messages of sap-ai-core.md section 6.6
into rules, applying them copy-on-write, and feeding learned keys back to the sanitizer."""

from __future__ import annotations

import copy
import json

import pytest

from app.translate.profiles import profile_for
from app.translate.sanitize import sanitize_bedrock
from app.translate.self_heal import HealRule, apply_rule, normalise_path, rule_from_error

SONNET45 = profile_for("anthropic--claude-4.5-sonnet")


@pytest.mark.parametrize("message, paths, reason", [
    ("context_management: Extra inputs are not permitted", ("context_management",), "extra_inputs"),
    ("output_config.effort: Extra inputs are not permitted", ("output_config.effort",), "extra_inputs"),
    ("messages.3.content.0.cache_control.scope: Extra inputs are not permitted",
     ("messages.*.content.*.cache_control.scope",), "extra_inputs"),
    ("messages.1.content.0.text.cache_control.scope: Extra inputs are not permitted",
     ("messages.*.content.*.cache_control.scope",), "extra_inputs"),
    ("tools.2.custom.defer_loading: Extra inputs are not permitted", ("tools.*.defer_loading",), "extra_inputs"),
    ("tools.0.custom.cache_control.ephemeral.scope: Extra inputs are not permitted",
     ("tools.*.cache_control.scope",), "extra_inputs"),
    ("thinking.adaptive.display: Extra inputs are not permitted", ("thinking.display",), "extra_inputs"),
    ("system.0.cache_control.scope: Extra inputs are not permitted", ("system.*.cache_control.scope",),
     "extra_inputs"),
    ("metadata: Extra inputs are not permitted", ("metadata",), "extra_inputs"),
    ("Malformed input request: #: extraneous key [stream] is not permitted, please reformat your input and "
     "try again.", ("stream",), "extraneous_key"),
    ("Malformed input request: #/messages/0: extraneous key [output_config] is not permitted, please reformat",
     ("messages.*.output_config",), "extraneous_key"),
    ("invalid beta flag", ("anthropic_beta",), "invalid_beta"),
    ("Invalid beta flag: foo-2099-01-01", ("anthropic_beta",), "invalid_beta"),
])
def test_rule_from_error(message, paths, reason):
    rule = rule_from_error(message)
    assert rule == HealRule(paths=paths, reason=reason)
    assert rule.key == ",".join(paths)


@pytest.mark.parametrize("raw", [
    '{"message":"context_management: Extra inputs are not permitted"}',
    '{"Message":"context_management: Extra inputs are not permitted"}',
    '{"error":{"type":"invalid_request_error","message":"context_management: Extra inputs are not permitted"}}',
    '{"error":"context_management: Extra inputs are not permitted"}',
])
def test_rule_from_json_error_bodies(raw):
    assert rule_from_error(raw).paths == ("context_management",)


def test_several_fields_in_one_message():
    msg = ("context_management: Extra inputs are not permitted; "
           "output_config: Extra inputs are not permitted; context_management: Extra inputs are not permitted")
    rule = rule_from_error(msg)
    assert rule.paths == ("context_management", "output_config")
    assert rule.key == "context_management,output_config"


@pytest.mark.parametrize("message", [
    "The provided request is not valid",
    "Input is too long for requested model.",
    "Too many tokens, please wait before trying again.",
    "",
    "{}",
    "not json {",
    "messages: Extra inputs are not permitted",
    "max_tokens: Extra inputs are not permitted",
    "messages.1.content.0.thinking.signature: Extra inputs are not permitted",
    "messages.0.content: Extra inputs are not permitted",
    "tools.0.custom.name: Extra inputs are not permitted",
])
def test_unrecognised_or_protected_messages_give_no_rule(message):
    assert rule_from_error(message) is None


def test_normalise_path():
    assert normalise_path("tools.12.custom.input_examples") == "tools.*.input_examples"
    assert normalise_path("messages.2.content.1.tool_result.content.0.text.citations") == \
        "messages.*.content.*.content.*.citations"
    assert normalise_path("text") == "text"  # a tag is kept as first or last segment
    assert normalise_path(".output_config.effort.") == "output_config.effort"


def _body():
    return {
        "anthropic_version": "bedrock-2023-05-31",
        "anthropic_beta": ["interleaved-thinking-2025-05-14"],
        "max_tokens": 1000,
        "output_config": {"effort": "high"},
        "context_management": {"edits": []},
        "messages": [
            {"role": "user", "content": [{"type": "text", "text": "a",
                                          "cache_control": {"type": "ephemeral", "scope": "s"}}]},
            {"role": "assistant", "content": "b"},
            {"role": "user", "content": [{"type": "text", "text": "c",
                                          "cache_control": {"type": "ephemeral", "scope": "s"}}]},
        ],
        "tools": [{"name": "A", "input_schema": {}, "defer_loading": True},
                  {"name": "B", "input_schema": {}}],
    }


def test_apply_rule_copy_on_write():
    body = _body()
    before = copy.deepcopy(body)
    rule = rule_from_error("messages.2.content.0.cache_control.scope: Extra inputs are not permitted")
    new = apply_rule(body, rule)
    assert body == before
    assert [m["content"][0]["cache_control"] for m in new["messages"] if m["role"] == "user"] == \
        [{"type": "ephemeral"}, {"type": "ephemeral"}]
    assert new["tools"] is body["tools"] and new["messages"][1] is body["messages"][1]
    assert apply_rule(new, rule) is None  # nothing left to remove


def test_apply_rules_for_each_kind():
    body = _body()
    cases = {
        "context_management: Extra inputs are not permitted": "context_management",
        "invalid beta flag": "anthropic_beta",
        "output_config.effort: Extra inputs are not permitted": "output_config",  # emptied -> removed
    }
    for message, gone in cases.items():
        new = apply_rule(body, rule_from_error(message))
        assert gone not in new and gone in body
    new = apply_rule(body, rule_from_error("tools.0.custom.defer_loading: Extra inputs are not permitted"))
    assert new["tools"][0] == {"name": "A", "input_schema": {}} and new["tools"][1] is body["tools"][1]


def test_apply_rule_not_applicable():
    body = _body()
    assert apply_rule(body, rule_from_error("safeguards: Extra inputs are not permitted")) is None
    del body["anthropic_beta"]
    assert apply_rule(body, rule_from_error("invalid beta flag")) is None


def test_learned_key_is_applied_up_front_by_the_sanitizer():
    rule = rule_from_error(json.dumps({"message": "metadata: Extra inputs are not permitted"}))
    client_body = {"model": "m", "max_tokens": 100, "metadata": {"user_id": "u"},
                   "messages": [{"role": "user", "content": "hi"}]}
    result = sanitize_bedrock(client_body, betas=["interleaved-thinking-2025-05-14"], profile=SONNET45,
                              extra_strip=[rule.key])
    assert "metadata" not in result.body
    assert result.repairs == ["healed:metadata"]
    beta_rule = rule_from_error("invalid beta flag")
    result = sanitize_bedrock(client_body, betas=["interleaved-thinking-2025-05-14"], profile=SONNET45,
                              extra_strip=[beta_rule.key])
    assert "anthropic_beta" not in result.body


def test_multi_path_key_round_trips_through_extra_strip():
    rule = rule_from_error("foo: Extra inputs are not permitted\nbaz.qux: Extra inputs are not permitted")
    assert rule.key == "foo,baz.qux"
    client_body = {"model": "m", "max_tokens": 100, "foo": 1, "baz": {"qux": 2, "keep": 3},
                   "messages": [{"role": "user", "content": "hi"}]}
    result = sanitize_bedrock(client_body, betas=(), profile=SONNET45, extra_strip=[rule.key])
    assert "foo" not in result.body and result.body["baz"] == {"keep": 3}
    assert result.repairs == ["healed:foo,baz.qux"]
    assert apply_rule(client_body, rule) == {k: v for k, v in client_body.items() if k != "foo"} | {"baz": {"keep": 3}}
