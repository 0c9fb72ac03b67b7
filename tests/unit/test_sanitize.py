"""Tests for app.translate.sanitize: golden files over real Claude Code bodies, a
validator of the Bedrock rules (sap-ai-core.md section 7), and one test group per step.

Regenerate the golden files with ``UPDATE_GOLDEN=1`` and review the diff by eye.
"""

from __future__ import annotations

import copy
import json
import os
import re
import time
from pathlib import Path

import pytest

from app.translate.profiles import ModelProfile, profile_for
from tests.http_fakes import BASH_TOOL, BASH_TOOL_LOOP
from tests.paths import CLAUDE_CODE_FIXTURES
from app.translate.sanitize import (
    BEDROCK_ANTHROPIC_VERSION,
    PREFILL_ERROR,
    STEPS,
    SanitizeError,
    parse_path,
    safe_tool_id,
    sanitize_bedrock,
    strip_paths,
)

FIXTURES = CLAUDE_CODE_FIXTURES
GOLDEN = Path(__file__).resolve().parents[1] / "fixtures" / "sanitize"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"

SONNET45 = profile_for("anthropic--claude-4.5-sonnet")
SONNET4 = profile_for("anthropic--claude-4-sonnet")
OPUS46 = profile_for("anthropic--claude-4.6-opus")
OPUS47 = profile_for("anthropic--claude-4.7-opus")
HAIKU35 = profile_for("anthropic--claude-3.5-haiku")
ALL_PROFILES = [
    profile_for(n)
    for n in (
        "anthropic--claude-3.7-sonnet",
        "anthropic--claude-4-sonnet",
        "anthropic--claude-4-opus",
        "anthropic--claude-4.1-opus",
        "anthropic--claude-4.5-sonnet",
        "anthropic--claude-4.5-haiku",
        "anthropic--claude-4.5-opus",
        "anthropic--claude-4.6-sonnet",
        "anthropic--claude-4.6-opus",
        "anthropic--claude-4.7-opus",
    )
]
TOOL_ID = re.compile(r"^[a-zA-Z0-9_-]+$")
SERVER_PREFIXES = ("web_search_", "web_fetch_", "code_execution_", "memory_", "tool_search_tool_",
                   "bash_", "computer_", "text_editor_")


# ----------------------------------------------------------------- fixture loading


def _split_betas(value: str) -> list[str]:
    return [b.strip() for b in value.split(",") if b.strip()]


def _load_cases() -> list:
    cases = []
    if not FIXTURES.is_dir():
        return cases
    for path in sorted(FIXTURES.glob("*/*.jsonl")):
        version = path.parent.name
        with path.open(encoding="utf-8") as fh:
            for line_no, line in enumerate(fh):
                rec = json.loads(line)
                url = rec["path"].split("?")[0]
                if rec["method"] != "POST" or url != "/v1/messages":
                    continue
                headers = {k.lower(): v for k, v in rec["headers"]}
                case_id = f"{version}__{path.stem}__{line_no}"
                cases.append(pytest.param(rec["body"], _split_betas(headers.get("anthropic-beta", "")),
                                          case_id, id=case_id))
    return cases


CASES = _load_cases()
needs_fixtures = pytest.mark.skipif(not CASES, reason=f"Claude Code fixtures not found at {FIXTURES}")


def _fixture(version: str, name: str, line: int = 0) -> tuple[dict, list[str]]:
    path = FIXTURES / version / f"{name}.jsonl"
    if not path.exists():
        pytest.skip(f"fixture {path} not present")
    rec = json.loads(path.read_text(encoding="utf-8").splitlines()[line])
    headers = {k.lower(): v for k, v in rec["headers"]}
    return rec["body"], _split_betas(headers.get("anthropic-beta", ""))


# ----------------------------------------------------------------- the validator (section 7 rules)


def _walk_blocks(body: dict):
    """Yield (where, block) for system blocks, message blocks and tool_result inner blocks."""
    if isinstance(body.get("system"), list):
        for b in body["system"]:
            yield "system", b
    for m in body.get("messages", []):
        if isinstance(m.get("content"), list):
            for b in m["content"]:
                yield "message", b
                if isinstance(b, dict) and b.get("type") == "tool_result" and isinstance(b.get("content"), list):
                    for ib in b["content"]:
                        yield "tool_result", ib


def _cache_controls(body: dict) -> list:
    """Every cache_control in processing order tools -> system -> messages."""
    out = [t["cache_control"] for t in body.get("tools", []) if "cache_control" in t]
    out += [b["cache_control"] for _w, b in _walk_blocks(body) if isinstance(b, dict) and "cache_control" in b]
    return out


def _thinking_blocks(body: dict) -> list:
    return [b for _w, b in _walk_blocks(body)
            if isinstance(b, dict) and b.get("type") in ("thinking", "redacted_thinking")]


def validate_bedrock_body(body: dict, profile: ModelProfile) -> None:
    """Assert the rules of sap-ai-core.md section 7 on a sanitized body."""
    assert "model" not in body and "stream" not in body
    assert body["anthropic_version"] == BEDROCK_ANTHROPIC_VERSION
    if "anthropic_beta" in body:
        betas = body["anthropic_beta"]
        assert betas and len(betas) == len(set(betas))
        assert all(profile.beta_allowed(b) for b in betas), betas
    if not profile.accepts_context_management:
        assert "context_management" not in body
    if not profile.accepts_output_config:
        assert "output_config" not in body
    assert not (set(body) & profile.strip_fields)
    assert body["max_tokens"] <= profile.max_output_tokens

    msgs = body["messages"]
    assert msgs and msgs[0]["role"] == "user"
    for m in msgs:
        assert set(m) == {"role", "content"}
        assert m["role"] in ("user", "assistant")
        if isinstance(m["content"], str):
            assert m["content"].strip()
        else:
            assert m["content"]
    if not profile.accepts_prefill:
        assert msgs[-1]["role"] == "user"
    for where, b in _walk_blocks(body):
        if b.get("type") == "text":
            assert isinstance(b["text"], str) and b["text"].strip(), (where, b)
        if not profile.supports_tool_search:
            assert b.get("type") != "tool_reference"
        if b.get("type") == "tool_use":
            assert TOOL_ID.match(b["id"])
        if b.get("type") == "tool_result":
            assert TOOL_ID.match(b["tool_use_id"])
        if b.get("type") in ("thinking", "redacted_thinking"):
            assert "cache_control" not in b

    ccs = _cache_controls(body)
    assert len(ccs) <= 4
    seen_5m = False
    for cc in ccs:
        assert set(cc) <= {"type", "ttl"} and "scope" not in cc
        ttl = cc.get("ttl", "5m")
        assert ttl in (("5m", "1h") if profile.accepts_ttl_1h else ("5m",))
        assert not (seen_5m and ttl == "1h")
        seen_5m = seen_5m or ttl == "5m"

    thinking = body.get("thinking")
    if thinking is not None:
        assert "display" not in thinking
        if profile.thinking_mode == "enabled":
            assert thinking["type"] == "enabled"
        if profile.thinking_mode == "adaptive":
            assert thinking["type"] == "adaptive"
        if thinking["type"] == "enabled":
            assert set(thinking) == {"type", "budget_tokens"}
            assert 1024 <= thinking["budget_tokens"] < body["max_tokens"]
        if thinking["type"] != "disabled":
            assert body.get("temperature", 1) == 1
            assert "top_k" not in body
            assert body.get("top_p", 1) >= 0.95

    tools = body.get("tools")
    has_tool_blocks = any(b.get("type") in ("tool_use", "tool_result") for w, b in _walk_blocks(body)
                          if w == "message" and isinstance(b, dict))
    if tools is not None:
        assert tools
        for t in tools:
            assert not str(t.get("type", "")).startswith(SERVER_PREFIXES)
            if not profile.supports_tool_search:
                if t["name"] == "DeferredToolPlaceholder":  # only as the anchor of a tool history
                    assert len(tools) == 1 and has_tool_blocks
                    assert body.get("tool_choice", {"type": "auto"})["type"] in ("auto", "none")
                assert not ({"defer_loading", "input_examples", "strict", "eager_input_streaming"} & set(t))
    else:
        assert "tool_choice" not in body


# ----------------------------------------------------------------- golden files and fixture invariants


@needs_fixtures
@pytest.mark.parametrize("body, betas, case_id", CASES)
def test_golden(body, betas, case_id):
    result = sanitize_bedrock(body, betas=betas, profile=SONNET45)
    actual = {"profile": SONNET45.name, "betas": betas, "repairs": result.repairs, "body": result.body}
    path = GOLDEN / f"{case_id}.out.json"
    if UPDATE:
        GOLDEN.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(actual, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    assert path.exists(), f"golden file {path} missing; run with UPDATE_GOLDEN=1 and review it"
    expected = json.loads(path.read_text(encoding="utf-8"))
    assert actual["repairs"] == expected["repairs"]
    assert actual["body"] == expected["body"]


@needs_fixtures
@pytest.mark.parametrize("profile", ALL_PROFILES, ids=lambda p: p.name)
@pytest.mark.parametrize("body, betas, case_id", CASES)
def test_fixture_rules(body, betas, case_id, profile):
    before = copy.deepcopy(body)
    result = sanitize_bedrock(body, betas=betas, profile=profile)
    assert body == before, "input was mutated"
    validate_bedrock_body(result.body, profile)
    assert _thinking_blocks(result.body) == _thinking_blocks(body)
    n_in = len(_cache_controls(body))  # includes blocks of role:"system" messages
    if n_in <= 4:
        assert len(_cache_controls(result.body)) == n_in
    # idempotent: the sanitized body needs nothing more
    again = sanitize_bedrock(result.body, betas=(), profile=profile)
    assert again.repairs == []
    assert again.body == result.body


@needs_fixtures
def test_websearch_helper_becomes_plain_text_request():
    body, betas = _fixture("2.1.332", "websearch", 2)
    result = sanitize_bedrock(body, betas=betas, profile=SONNET45)
    assert "tools" not in result.body and "tool_choice" not in result.body
    assert "server_tool.web_search" in result.repairs


@needs_fixtures
def test_tools_shared_with_input_when_unchanged():
    body, betas = _fixture("2.1.332", "no_toolsearch")
    result = sanitize_bedrock(body, betas=betas, profile=SONNET45)
    assert result.body["tools"] is body["tools"]
    assert result.body["system"] is body["system"]


@needs_fixtures
def test_benchmark_no_toolsearch():
    body, betas = _fixture("2.1.332", "no_toolsearch")
    assert len(json.dumps(body)) > 70_000
    sanitize_bedrock(body, betas=betas, profile=SONNET45)  # warm up
    runs = 200
    t0 = time.perf_counter()
    for _ in range(runs):
        sanitize_bedrock(body, betas=betas, profile=SONNET45)
    per_call = (time.perf_counter() - t0) / runs
    print(f"\nsanitize_bedrock(no_toolsearch, 77 KB): {per_call * 1e3:.3f} ms per call")
    assert per_call < 0.005


# ----------------------------------------------------------------- helpers for unit tests


def _body(messages=None, **extra) -> dict:
    body = {"model": "claude-x", "max_tokens": 32000, "stream": True,
            "messages": messages if messages is not None else [{"role": "user", "content": "hi"}]}
    body.update(extra)
    return body


def run(body, profile=SONNET45, betas=(), **kw):
    before = copy.deepcopy(body)
    result = sanitize_bedrock(body, betas=betas, profile=profile, **kw)
    assert body == before, "input was mutated"
    return result


def text(t, **kw):
    return {"type": "text", "text": t, **kw}


EPH = {"type": "ephemeral"}


# ----------------------------------------------------------------- step order


def test_steps_are_ordered_and_named():
    names = [s.__name__ for s in STEPS]
    assert names.index("_envelope") == 0
    assert names.index("_fold_system_messages") < names.index("_empty_text")
    assert names.index("_max_tokens") < names.index("_thinking")
    assert names.index("_empty_text") < names.index("_prefill") < names.index("_cache_control")
    assert names[-1] == "_extra_strip"


def test_non_dict_body_is_an_error():
    with pytest.raises(SanitizeError):
        sanitize_bedrock([], betas=(), profile=SONNET45)


# ----------------------------------------------------------------- envelope and betas


def test_envelope_is_not_a_repair():
    r = run(_body(anthropic_version="2023-06-01"))
    assert r.body["anthropic_version"] == BEDROCK_ANTHROPIC_VERSION
    assert "model" not in r.body and "stream" not in r.body and "anthropic_beta" not in r.body
    assert r.repairs == [] and not r.changed


def test_betas_mapped_deduplicated_in_order():
    betas = ["claude-code-20250219", "fine-grained-tool-streaming-2025-05-14",
             "interleaved-thinking-2025-05-14,context-1m-2025-08-07", " fine-grained-tool-streaming-2025-05-14 ",
             "effort-2025-11-24", "extended-cache-ttl-2025-04-11", "advanced-tool-use-2025-11-20"]
    r = run(_body(), betas=betas)
    assert r.body["anthropic_beta"] == ["fine-grained-tool-streaming-2025-05-14",
                                        "interleaved-thinking-2025-05-14", "context-1m-2025-08-07"]
    assert "beta.dropped" in r.repairs and "beta.renamed" not in r.repairs


def test_body_anthropic_beta_is_merged():
    r = run(_body(anthropic_beta=["interleaved-thinking-2025-05-14", "bogus"]),
            betas=["fine-grained-tool-streaming-2025-05-14"])
    assert r.body["anthropic_beta"] == ["fine-grained-tool-streaming-2025-05-14", "interleaved-thinking-2025-05-14"]


def test_context_1m_only_where_profile_allows():
    beta = ["context-1m-2025-08-07"]
    assert run(_body(), SONNET4, beta).body["anthropic_beta"] == beta
    assert "anthropic_beta" not in run(_body(), profile_for("anthropic--claude-4.5-opus"), beta).body


def test_tool_search_rename_only_with_tool_search():
    betas = ["advanced-tool-use-2025-11-20", "tool-search-tool-2025-10-19"]
    assert "anthropic_beta" not in run(_body(), SONNET45, betas).body
    ts = profile_for("anthropic--claude-4.5-sonnet", {"supports_tool_search": True})
    r = run(_body(), ts, betas)
    assert r.body["anthropic_beta"] == ["tool-search-tool-2025-10-19"]
    assert "beta.renamed" in r.repairs


# ----------------------------------------------------------------- top-level fields and extra_strip


def test_unsupported_top_level_fields_removed():
    body = _body(context_management={"edits": []}, output_config={"effort": "high"},
                 safeguards=[{}], service_tier="auto", container="c", mcp_servers=[], metadata={"user_id": "u"})
    r = run(body)
    for k in ("context_management", "output_config", "safeguards", "service_tier", "container", "mcp_servers"):
        assert k not in r.body and k in r.repairs
    assert r.body["metadata"] == {"user_id": "u"}


def test_profile_may_accept_context_management_and_output_config():
    p = profile_for("anthropic--claude-4.6-opus", {"accepts_output_config": True, "accepts_context_management": True})
    r = run(_body(context_management={"edits": []}, output_config={"effort": "high"}), p)
    assert r.body["output_config"] == {"effort": "high"} and r.body["context_management"] == {"edits": []}


def test_extra_strip_paths():
    tool = {"name": "A", "description": "d", "input_schema": {"type": "object"}}
    body = _body([{"role": "user", "content": [text("x", cache_control={"type": "ephemeral"})]}],
                 metadata={"user_id": "u"}, tools=[tool, dict(tool, name="B")], top_p=0.99)
    r = run(body, extra_strip=["metadata.user_id", "top_p",
                               "messages.*.content.*.cache_control", "tools.description"])
    assert "metadata" not in r.body  # emptied top-level object goes too
    assert "top_p" not in r.body
    assert "cache_control" not in r.body["messages"][0]["content"][0]
    assert all("description" not in t for t in r.body["tools"])
    assert r.repairs == ["healed:metadata.user_id", "healed:top_p",
                         "healed:messages.*.content.*.cache_control", "healed:tools.description"]


def test_extra_strip_comma_list_and_nothing_to_remove():
    r = run(_body(temperature=0.5, top_k=3), profile=SONNET4, extra_strip=["temperature,top_k", "nothing.here"])
    assert "temperature" not in r.body and "top_k" not in r.body
    assert r.repairs == ["healed:temperature,top_k"]


def test_parse_path():
    assert parse_path("a.*.b, c") == (("a", "*", "b"), ("c",))
    for bad in ("a..b", "a.*", "a.0"):
        with pytest.raises(ValueError):
            parse_path(bad)


def test_strip_paths_copy_on_write():
    body = {"a": {"b": 1, "c": {"d": 2}}, "l": [{"x": 1}, {"y": 2}], "keep": {"k": 1}}
    before = copy.deepcopy(body)
    new, hits = strip_paths(body, ["a.c.d", "l.0.x", "l.*.y", "zz"])
    assert body == before
    assert new == {"a": {"b": 1, "c": {}}, "l": [{}, {}], "keep": {"k": 1}}
    assert new["keep"] is body["keep"]
    assert hits == ["a.c.d", "l.0.x", "l.*.y"]
    same, hits = strip_paths(body, ["nope", "a.zz"])
    assert same is body and hits == []


# ----------------------------------------------------------------- role:"system" messages


SYS_TEXT = "# Environment\nPrimary working directory: /tmp"


def wrapped(system_text: str) -> str:
    """How a folded ``role:"system"`` text reads inside the user turn."""
    return "<system-reminder>\n" + system_text + "\n</system-reminder>"


def test_system_message_last_is_appended_to_previous_user():
    msgs = [{"role": "user", "content": [text("<system-reminder>x</system-reminder>"), text("say hello")]},
            {"role": "system", "content": [text(SYS_TEXT, cache_control=EPH)], "output_config": {"effort": "high"}}]
    r = run(_body(msgs, system=[text("x-anthropic-billing-header: cc"), text("You are", cache_control=EPH)]))
    assert r.body["messages"] == [{"role": "user", "content": [
        text("<system-reminder>x</system-reminder>"), text("say hello"), text(wrapped(SYS_TEXT), cache_control=EPH)]}]
    assert r.body["system"][0]["text"].startswith("x-anthropic-billing-header")
    assert "system_message_folded" in r.repairs


def test_system_message_string_and_list_give_the_same_text_block():
    first = [{"role": "user", "content": "list files"},
             {"role": "system", "content": [text(SYS_TEXT, cache_control=EPH)]}]
    later = [{"role": "user", "content": "list files"},
             {"role": "system", "content": SYS_TEXT},
             {"role": "assistant", "content": [text("ok")]},
             {"role": "user", "content": "more"}]
    a = run(_body(first)).body["messages"][0]
    b = run(_body(later)).body["messages"][0]
    assert a["content"][1] == text(wrapped(SYS_TEXT), cache_control=EPH)
    assert b["content"][1] == text(wrapped(SYS_TEXT))
    assert a["content"][0] == b["content"][0] == text("list files")


def test_system_message_first_is_prepended_to_next_user():
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": [text("hi")]}]
    assert run(_body(msgs)).body["messages"] == [{"role": "user", "content": [text(wrapped("S")), text("hi")]}]


def test_system_message_between_assistants_becomes_user_in_place():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "system", "content": "S1"}, {"role": "system", "content": [text("S2")]},
            {"role": "assistant", "content": "c"}]
    out = run(_body(msgs)).body["messages"]
    assert [m["role"] for m in out] == ["user", "assistant", "user", "assistant"]
    assert out[2] == {"role": "user", "content": [text(wrapped("S1")), text(wrapped("S2"))]}


def test_system_message_goes_after_tool_results():
    msgs = [{"role": "user", "content": "a"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "X", "input": {}}]},
            {"role": "system", "content": "S"},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t1", "content": "r"}, text("u")]}]
    out = run(_body(msgs)).body["messages"]
    assert [b["type"] for b in out[2]["content"]] == ["tool_result", "text", "text"]
    assert out[2]["content"][1] == text(wrapped("S"))


def test_system_message_at_end_after_assistant():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "system", "content": "<total_tokens>14994420 tokens left</total_tokens>"}]
    out = run(_body(msgs)).body["messages"]
    assert out[-1] == {"role": "user", "content": [text(wrapped("<total_tokens>14994420 tokens left</total_tokens>"))]}


def test_empty_system_message_disappears():
    msgs = [{"role": "user", "content": "a"}, {"role": "system", "content": ""}]
    assert run(_body(msgs)).body["messages"] == [{"role": "user", "content": "a"}]


def test_message_extras_removed():
    r = run(_body([{"role": "user", "content": "a", "output_config": {"effort": "low"}}]))
    assert r.body["messages"] == [{"role": "user", "content": "a"}]
    assert "message.output_config" in r.repairs


# ----------------------------------------------------------------- max_tokens and thinking


def test_max_tokens_clamped_never_raised():
    assert run(_body(max_tokens=128000)).body["max_tokens"] == 64000
    assert run(_body(max_tokens=128000)).repairs == ["max_tokens_clamped"]
    assert run(_body(max_tokens=100)).body["max_tokens"] == 100


def test_max_tokens_of_46_models():
    body = _body(max_tokens=128000)
    assert run(body, profile_for("anthropic--claude-4.6-sonnet")).body["max_tokens"] == 64000
    assert run(body, OPUS46).body["max_tokens"] == 128000


def test_adaptive_becomes_enabled():
    r = run(_body(thinking={"type": "adaptive", "display": "omitted"}))
    assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 31999}
    assert r.repairs == ["thinking.display", "thinking.adaptive->enabled"]
    r = run(_body(max_tokens=8000, thinking={"type": "adaptive"}))
    assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 7999}


def test_budget_follows_clamped_max_tokens():
    r = run(_body(max_tokens=200000, thinking={"type": "enabled", "budget_tokens": 150000}), OPUS46)
    assert r.body["max_tokens"] == 128000 and r.body["thinking"]["budget_tokens"] == 127999
    assert r.repairs == ["max_tokens_clamped", "thinking.budget_clamped"]


def test_budget_clamped_to_range():
    assert run(_body(thinking={"type": "enabled", "budget_tokens": 10})).body["thinking"]["budget_tokens"] == 1024
    assert run(_body(max_tokens=5000, thinking={"type": "enabled", "budget_tokens": 5000})
               ).body["thinking"]["budget_tokens"] == 4999
    ok = {"type": "enabled", "budget_tokens": 2000}
    r = run(_body(thinking=ok))
    assert r.body["thinking"] is ok and r.repairs == []
    whole = run(_body(thinking={"type": "enabled", "budget_tokens": 2000.0})).body["thinking"]
    assert type(whole["budget_tokens"]) is int and whole["budget_tokens"] == 2000


def test_thinking_dropped_when_max_tokens_too_small():
    r = run(_body(max_tokens=1024, thinking={"type": "enabled", "budget_tokens": 1024}))
    assert "thinking" not in r.body and r.repairs == ["thinking.dropped"]


def test_context_management_inside_thinking_removed():
    r = run(_body(thinking={"type": "enabled", "budget_tokens": 2000, "context_management": {}}))
    assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_enabled_becomes_adaptive_on_opus_47_and_sampling_dropped():
    r = run(_body(thinking={"type": "enabled", "budget_tokens": 5000}, temperature=1, top_p=0.99, top_k=5),
            OPUS47, betas=[])
    assert r.body["thinking"] == {"type": "adaptive"}
    assert not {"temperature", "top_p", "top_k"} & set(r.body)
    assert "thinking.enabled->adaptive" in r.repairs


def test_both_mode_keeps_adaptive():
    r = run(_body(thinking={"type": "adaptive"}), OPUS46)
    assert r.body["thinking"] == {"type": "adaptive"} and r.repairs == []


def test_thinking_unsupported_on_old_models():
    r = run(_body(max_tokens=8000, thinking={"type": "enabled", "budget_tokens": 2000}), HAIKU35)
    assert "thinking" not in r.body and r.repairs == ["thinking.unsupported"]


@pytest.mark.parametrize("extra, dropped", [
    ({"temperature": 0.5}, {"temperature"}),
    ({"temperature": 1}, set()),
    ({"temperature": 1.0}, set()),
    ({"top_k": 40}, {"top_k"}),
    ({"top_p": 0.9}, {"top_p"}),
    ({"top_p": 0.96}, set()),
])
def test_sampling_with_thinking(extra, dropped):
    r = run(_body(thinking={"type": "enabled", "budget_tokens": 2000}, **extra), SONNET4)
    assert set(extra) - set(r.body) == dropped
    assert sorted(r.repairs) == sorted(f"sampling.{k}" for k in dropped)


def test_top_p_dropped_next_to_temperature_where_profile_says():
    assert "top_p" not in run(_body(temperature=0.3, top_p=0.5)).body
    assert run(_body(temperature=0.3, top_p=0.5), SONNET4).body["top_p"] == 0.5


def test_disabled_thinking_kept():
    r = run(_body(thinking={"type": "disabled"}, temperature=0.2), SONNET4)
    assert r.body["thinking"] == {"type": "disabled"} and r.body["temperature"] == 0.2


# ----------------------------------------------------------------- tools


SCHEMA = {"$schema": "https://json-schema.org/draft/2020-12/schema", "type": "object", "properties": {}}


def _tool(name, **kw):
    return {"name": name, "description": f"{name} tool", "input_schema": SCHEMA, **kw}


def test_empty_tools_removed_with_tool_choice():
    r = run(_body(tools=[], tool_choice={"type": "auto"}))
    assert "tools" not in r.body and "tool_choice" not in r.body and r.repairs == ["tools.empty"]


def test_server_tools_removed():
    tools = [{"type": "web_search_20250305", "name": "web_search", "max_uses": 8},
             {"type": "web_fetch_20250910", "name": "web_fetch"},
             {"type": "code_execution_20250825", "name": "code_execution"},
             {"type": "memory_20250818", "name": "memory"},
             {"type": "tool_search_tool_regex_20251119", "name": "tool_search"},
             {"type": "bash_20250124", "name": "bash"},
             _tool("Read")]
    r = run(_body(tools=tools, tool_choice={"type": "tool", "name": "web_search"}))
    assert r.body["tools"] == [_tool("Read")]
    assert "tool_choice" not in r.body
    assert r.repairs == ["server_tool.web_search", "server_tool.web_fetch", "server_tool.code_execution",
                         "server_tool.memory", "server_tool.tool_search_tool_regex", "server_tool.bash",
                         "tool_choice"]


def test_tool_choice_kept_when_its_tool_stays():
    r = run(_body(tools=[{"type": "web_search_20250305", "name": "web_search"}, _tool("Read")],
                  tool_choice={"type": "tool", "name": "Read"}))
    assert r.body["tool_choice"] == {"type": "tool", "name": "Read"}


def test_tool_choice_without_tools_removed():
    assert "tool_choice" not in run(_body(tool_choice={"type": "auto"})).body


def test_builtin_client_tools_kept_when_profile_allows():
    p = profile_for("anthropic--claude-4.5-sonnet", {"allowed_tool_types": ["bash_", "text_editor_"]})
    tools = [{"type": "bash_20250124", "name": "bash"}, {"type": "computer_20250124", "name": "computer"}]
    assert run(_body(tools=tools), p).body["tools"] == tools[:1]


def test_custom_tool_extras_removed_and_placeholder_dropped():
    tools = [_tool("Read", cache_control=EPH),
             _tool("WebSearch", defer_loading=True, input_examples=[{}], strict=True, eager_input_streaming=True),
             _tool("Custom", type="custom"),
             {"name": "DeferredToolPlaceholder", "description": "never call this tool",
              "input_schema": {"type": "object", "properties": {}}, "defer_loading": True}]
    r = run(_body(tools=tools))
    assert r.body["tools"] == [_tool("Read", cache_control=EPH), _tool("WebSearch"), _tool("Custom", type="custom")]
    assert r.body["tools"][0] is tools[0]  # untouched tools are shared
    assert r.body["tools"][1]["input_schema"]["$schema"]  # $schema kept by default
    assert r.repairs == ["tool.defer_loading", "tool.input_examples", "tool.strict",
                         "tool.eager_input_streaming", "tool.placeholder"]


PLACEHOLDER = {"name": "DeferredToolPlaceholder", "description": "never call this tool",
               "input_schema": {"type": "object", "properties": {}}, "defer_loading": True}
TOOL_HISTORY = [{"role": "user", "content": "go"},
                {"role": "assistant", "content": [{"type": "tool_use", "id": "toolu_1", "name": "Read", "input": {}}]},
                {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}]}]


@pytest.mark.parametrize("tool_choice, kept", [(None, None), ({"type": "auto"}, {"type": "auto"}),
                                               ({"type": "any"}, None),
                                               ({"type": "tool", "name": "DeferredToolPlaceholder"}, None),
                                               ({"type": "tool", "name": "web_search"}, None)])
def test_placeholder_kept_as_the_only_tool_of_a_tool_history(tool_choice, kept):
    # Anthropic validation: "Requests which include tool_use or tool_result blocks must define tools"
    tools = [{"type": "web_search_20250305", "name": "web_search"}, PLACEHOLDER]
    extra = {"tool_choice": tool_choice} if tool_choice else {}
    r = run(_body(TOOL_HISTORY, tools=tools, **extra))
    assert r.body["tools"] == [{k: v for k, v in PLACEHOLDER.items() if k != "defer_loading"}]
    assert r.body.get("tool_choice") == kept
    assert "tool.placeholder" not in r.repairs
    assert r.repairs[:2] == ["server_tool.web_search", "tool.defer_loading"]
    assert ("tool_choice" in r.repairs) is (tool_choice is not None and kept is None)
    validate_bedrock_body(r.body, SONNET45)
    again = run(r.body)
    assert again.repairs == [] and again.body == r.body


def test_placeholder_dropped_without_tool_history_or_next_to_other_tools():
    r = run(_body(tools=[PLACEHOLDER]))  # no tool blocks in the messages
    assert "tools" not in r.body and r.repairs == ["tool.placeholder"]
    r = run(_body(TOOL_HISTORY, tools=[PLACEHOLDER, _tool("Read")]))
    assert r.body["tools"] == [_tool("Read")] and r.repairs == ["tool.placeholder"]


def test_only_server_tools_with_tool_history_leaves_no_tools():
    # nothing to anchor the history on: no tool is invented (documented in _tools)
    r = run(_body(TOOL_HISTORY, tools=[{"type": "web_search_20250305", "name": "web_search"}]))
    assert "tools" not in r.body and r.repairs == ["server_tool.web_search"]
    r = run(_body(TOOL_HISTORY, tools=[]))
    assert "tools" not in r.body and r.repairs == ["tools.empty"]


def test_tool_search_profile_keeps_deferred_tools():
    p = profile_for("anthropic--claude-4.5-sonnet", {"supports_tool_search": True})
    tools = [_tool("WebSearch", defer_loading=True),
             {"name": "DeferredToolPlaceholder", "description": "x", "input_schema": {"type": "object"},
              "defer_loading": True}]
    r = run(_body(tools=tools), p)
    assert r.body["tools"] is tools


def test_schema_keyword_stripped_when_profile_says():
    p = profile_for("anthropic--claude-4.5-sonnet", {"strip_schema_keyword": True})
    r = run(_body(tools=[_tool("Read")]), p)
    assert "$schema" not in r.body["tools"][0]["input_schema"]
    assert r.repairs == ["tool.$schema"]
    assert "$schema" in SCHEMA


# ----------------------------------------------------------------- tool_result content and ids


def _tool_turns(result_content, tool_id="toolu_1"):
    return [{"role": "user", "content": "go"},
            {"role": "assistant", "content": [{"type": "tool_use", "id": tool_id, "name": "ToolSearch", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": tool_id, "content": result_content,
                                          "cache_control": EPH}]}]


def test_tool_reference_becomes_text():
    r = run(_body(_tool_turns([{"type": "tool_reference", "tool_name": "WebSearch"}])))
    tr = r.body["messages"][2]["content"][0]
    assert tr["content"] == [text("Tool loaded: WebSearch")]
    assert tr["cache_control"] == EPH
    assert r.repairs == ["tool_reference->text"]


def test_tool_reference_kept_with_tool_search():
    p = profile_for("anthropic--claude-4.5-sonnet", {"supports_tool_search": True})
    content = [{"type": "tool_reference", "tool_name": "WebSearch"}]
    assert run(_body(_tool_turns(content)), p).body["messages"][2]["content"][0]["content"] is content


def test_unknown_tool_result_blocks_become_text_and_allowed_stay():
    img = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    content = [text("a"), img, {"type": "weird", "x": 1, "cache_control": EPH}]
    out = run(_body(_tool_turns(content))).body["messages"][2]["content"][0]["content"]
    assert out[0] is content[0] and out[1] is img
    assert out[2] == {"type": "text", "text": '{"type":"weird","x":1,"cache_control":{"type":"ephemeral"}}',
                      "cache_control": EPH}


def test_string_tool_result_stays_string():
    msgs = _tool_turns("alpha_marker.txt")
    r = run(_body(msgs))
    assert r.body["messages"] is msgs and r.repairs == []


def test_bad_tool_ids_rewritten_consistently():
    msgs = _tool_turns("ok", tool_id="call:1/a b")
    r = run(_body(msgs))
    new_id = r.body["messages"][1]["content"][0]["id"]
    assert TOOL_ID.match(new_id) and new_id.startswith("call_1_a_b_")
    assert r.body["messages"][2]["content"][0]["tool_use_id"] == new_id
    assert r.repairs == ["tool_id"]
    assert safe_tool_id("call:1/a b") == new_id and safe_tool_id("toolu_ok") == "toolu_ok"
    assert safe_tool_id("a.b") != safe_tool_id("a:b")


def test_good_tool_ids_untouched():
    msgs = _tool_turns("ok")
    assert run(_body(msgs)).body["messages"] is msgs


def test_image_url_is_a_client_error():
    msgs = [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]
    with pytest.raises(SanitizeError, match="image URLs are not supported"):
        run(_body(msgs))
    nested = _tool_turns([{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}])
    with pytest.raises(SanitizeError):
        run(_body(nested))


# ----------------------------------------------------------------- empty text and empty messages


def test_empty_text_blocks_dropped_everywhere():
    msgs = [{"role": "user", "content": [text(""), text("hi"), text("  \n")]},
            {"role": "assistant", "content": [text("a")]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t", "content": [text("")]},
                                         text("x")]}]
    r = run(_body(msgs, system=[text("S"), text("")]))
    assert r.body["system"] == [text("S")]
    assert r.body["messages"][0]["content"] == [text("hi")]
    assert r.body["messages"][2]["content"][0] == {"type": "tool_result", "tool_use_id": "t"}
    assert r.repairs == ["empty_text_dropped"]


def test_empty_system_removed():
    assert "system" not in run(_body(system="  ")).body
    assert "system" not in run(_body(system=[text("")])).body


def test_cache_control_moves_off_a_dropped_empty_block():
    msgs = [{"role": "user", "content": [text("hi"), text("", cache_control=EPH)]}]
    r = run(_body(msgs))
    assert r.body["messages"][0]["content"] == [text("hi", cache_control=EPH)]
    assert "cache_control.moved" in r.repairs


def test_final_empty_assistant_dropped():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": [text("")]}]
    r = run(_body(msgs))
    assert r.body["messages"] == [{"role": "user", "content": "hi"}]
    assert r.repairs == ["empty_text_dropped", "empty_message_dropped"]


def test_empty_pair_in_the_middle_dropped():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
            {"role": "user", "content": [text("")]}, {"role": "assistant", "content": ""},
            {"role": "user", "content": "c"}]
    out = run(_body(msgs)).body["messages"]
    assert [m["content"] for m in out] == ["a", "b", "c"]


def test_empty_message_in_the_middle_dropped_and_neighbours_merged():
    # pain point 14: an assistant turn left with only an empty text block
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": [text(" ")]},
            {"role": "user", "content": [text("c", cache_control=EPH)]}]
    r = run(_body(msgs))
    assert r.body["messages"] == [{"role": "user", "content": [text("a"), text("c", cache_control=EPH)]}]
    assert r.repairs == ["empty_text_dropped", "empty_message_dropped"]
    validate_bedrock_body(r.body, SONNET45)


def test_merge_keeps_every_block_in_order_and_thinking_untouched():
    think = {"type": "thinking", "thinking": "hmm", "signature": "EqQB=="}
    red = {"type": "redacted_thinking", "data": "ZZZ"}
    tr = {"type": "tool_result", "tool_use_id": "toolu_1", "content": "r"}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": [think, {"type": "tool_use", "id": "toolu_1", "name": "X", "input": {}}]},
            {"role": "user", "content": [tr, text("")]},
            {"role": "assistant", "content": [red, text("ok")]},
            {"role": "user", "content": ""},
            {"role": "assistant", "content": "more"},
            {"role": "user", "content": "next"}]
    r = run(_body(msgs, thinking={"type": "enabled", "budget_tokens": 2000}))
    out = r.body["messages"]
    assert [m["role"] for m in out] == ["user", "assistant", "user", "assistant", "user"]
    assert out[2]["content"] == [tr]
    assert out[3]["content"] == [red, text("ok"), text("more")]
    assert out[3]["content"][0] is red
    assert out[1] is msgs[1] and out[4] is msgs[6]  # untouched messages are shared
    assert _thinking_blocks(r.body) == _thinking_blocks(_body(msgs))
    assert r.repairs == ["empty_text_dropped", "empty_message_dropped"]
    validate_bedrock_body(r.body, SONNET45)


def test_merge_chains_over_several_dropped_runs():
    msgs = [{"role": "user", "content": "a"}, {"role": "assistant", "content": ""},
            {"role": "user", "content": [text("b")]}, {"role": "assistant", "content": [text("")]},
            {"role": "user", "content": "c"}, {"role": "assistant", "content": "d"},
            {"role": "user", "content": "e"}]
    r = run(_body(msgs))
    assert r.body["messages"] == [{"role": "user", "content": [text("a"), text("b"), text("c")]},
                                  msgs[5], msgs[6]]
    # idempotent
    again = run(r.body)
    assert again.repairs == [] and again.body["messages"] == r.body["messages"]


def test_empty_message_between_same_roles_already_not_alternating():
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": ""}, {"role": "user", "content": "c"}]
    assert run(_body(msgs)).body["messages"] == [{"role": "user", "content": [text("a"), text("c")]}]
    # same-role neighbours the client sent side by side are left as they are
    msgs = [{"role": "user", "content": "a"}, {"role": "user", "content": "b"},
            {"role": "assistant", "content": ""}, {"role": "assistant", "content": "c"}, {"role": "user", "content": "d"}]
    assert [m["content"] for m in run(_body(msgs)).body["messages"]] == ["a", "b", "c", "d"]


def test_empty_messages_that_cannot_be_dropped_are_errors():
    with pytest.raises(SanitizeError, match="start with an assistant"):
        run(_body([{"role": "user", "content": ""}, {"role": "assistant", "content": "x"},
                   {"role": "user", "content": "y"}]))
    with pytest.raises(SanitizeError, match="every message is empty"):
        run(_body([{"role": "user", "content": ""}]))
    with pytest.raises(SanitizeError, match="every message is empty"):
        run(_body([{"role": "user", "content": [text("")]}, {"role": "assistant", "content": " "}]))
    with pytest.raises(SanitizeError, match="messages.2"):  # empty last user turn after an answer
        run(_body([{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"},
                   {"role": "user", "content": [text("")]}]))


def test_leading_and_trailing_empty_messages_dropped_where_safe():
    msgs = [{"role": "user", "content": ""}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": ""}, {"role": "assistant", "content": [text("")]}]
    r = run(_body(msgs))
    assert r.body["messages"] == [msgs[1]]
    assert r.repairs == ["empty_text_dropped", "empty_message_dropped"]
    msgs = [{"role": "user", "content": ""}, {"role": "user", "content": "a"},
            {"role": "assistant", "content": "b"}, {"role": "user", "content": "c"},
            {"role": "user", "content": ""}]
    r = run(_body(msgs))
    assert [m["content"] for m in r.body["messages"]] == ["a", "b", "c"]


# ----------------------------------------------------------------- prefill


def test_prefill_rejected_on_46():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "{"}]
    with pytest.raises(SanitizeError) as err:
        run(_body(msgs), OPUS46)
    assert str(err.value) == PREFILL_ERROR
    assert run(_body(msgs)).body["messages"] == msgs  # older models keep prefill


def test_empty_prefill_dropped_on_46():
    msgs = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": []}]
    r = run(_body(msgs), OPUS46)
    assert r.body["messages"] == msgs[:1]


# ----------------------------------------------------------------- cache_control


def test_cache_control_scope_and_unknown_keys_removed():
    cc = {"type": "ephemeral", "scope": "session", "foo": 1}
    r = run(_body([{"role": "user", "content": [text("a", cache_control=cc)]}],
                  tools=[_tool("Read", cache_control={"type": "ephemeral", "scope": "global"})]))
    assert r.body["messages"][0]["content"][0]["cache_control"] == EPH
    assert r.body["tools"][0]["cache_control"] == EPH
    assert r.repairs == ["cache_control.scope", "cache_control.foo"]


def test_cache_ttl_per_profile():
    msgs = [{"role": "user", "content": [text("a", cache_control={"type": "ephemeral", "ttl": "1h"})]}]
    assert run(_body(msgs)).body["messages"] is msgs
    r = run(_body(msgs), SONNET4)
    assert r.body["messages"][0]["content"][0]["cache_control"] == EPH and r.repairs == ["cache_control.ttl"]
    bad = [{"role": "user", "content": [text("a", cache_control={"type": "ephemeral", "ttl": "2d"})]}]
    assert run(_body(bad)).body["messages"][0]["content"][0]["cache_control"] == EPH


def test_cache_ttl_1h_never_after_5m():
    one_h = {"type": "ephemeral", "ttl": "1h"}
    r = run(_body([{"role": "user", "content": [text("a", cache_control=one_h)]}],
                  system=[text("s", cache_control=EPH)], tools=[_tool("Read", cache_control=one_h)]))
    assert r.body["tools"][0]["cache_control"] == one_h
    assert r.body["system"][0]["cache_control"] == EPH
    assert r.body["messages"][0]["content"][0]["cache_control"] == EPH
    assert r.repairs == ["cache_control.ttl_order"]


def test_at_most_four_breakpoints_head_first_then_latest_messages():
    msgs = []
    for i in range(4):
        msgs.append({"role": "user", "content": [text(f"u{i}", cache_control=EPH)]})
        msgs.append({"role": "assistant", "content": [text(f"a{i}")]})
    msgs.append({"role": "user", "content": [text("last", cache_control=EPH)]})
    r = run(_body(msgs, system=[text("s1", cache_control=EPH), text("s2", cache_control=EPH)]))
    kept = [b["text"] for m in r.body["messages"] for b in m["content"] if "cache_control" in b]
    assert kept == ["u3", "last"]
    assert all("cache_control" in b for b in r.body["system"])
    assert r.repairs == ["cache_control.limit"]


def test_more_than_four_in_head_keeps_latest():
    r = run(_body(tools=[_tool(f"T{i}", cache_control=EPH) for i in range(6)]))
    assert ["cache_control" in t for t in r.body["tools"]] == [False, False, True, True, True, True]


def test_thinking_blocks_never_altered_but_lose_cache_control():
    think = {"type": "thinking", "thinking": "hmm", "signature": "EqQB==", "cache_control": EPH}
    red = {"type": "redacted_thinking", "data": "ZZZ"}
    msgs = [{"role": "user", "content": "q"},
            {"role": "assistant", "content": [think, red, {"type": "tool_use", "id": "t:1", "name": "X", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "t:1", "content": "r"}]}]
    r = run(_body(msgs, thinking={"type": "enabled", "budget_tokens": 2000}))
    blocks = r.body["messages"][1]["content"]
    assert blocks[0] == {"type": "thinking", "thinking": "hmm", "signature": "EqQB=="}
    assert blocks[1] is red
    assert [b["type"] for b in blocks] == ["thinking", "redacted_thinking", "tool_use"]
    assert "cache_control.thinking" in r.repairs


def test_nothing_to_do_shares_everything():
    msgs = [{"role": "user", "content": [text("a", cache_control=EPH)]}]
    system = [text("s", cache_control=EPH)]
    tools = [_tool("Read", cache_control=EPH)]
    r = run(_body(msgs, system=system, tools=tools, thinking={"type": "enabled", "budget_tokens": 2000}),
            betas=["interleaved-thinking-2025-05-14"])
    assert r.repairs == [] and not r.changed
    assert r.body["messages"] is msgs and r.body["system"] is system and r.body["tools"] is tools


def test_everything_at_once_does_not_mutate_input():
    msgs = [{"role": "system", "content": [text("env", cache_control={"type": "ephemeral", "scope": "x"})],
             "output_config": {"effort": "high"}},
            {"role": "user", "content": [text(""), text("hi", cache_control={"type": "ephemeral", "ttl": "1h"})]},
            {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                              {"type": "tool_use", "id": "a.b", "name": "ToolSearch", "input": {}}]},
            {"role": "user", "content": [{"type": "tool_result", "tool_use_id": "a.b",
                                          "content": [{"type": "tool_reference", "tool_name": "W"}]}]},
            {"role": "assistant", "content": [text("")]}]
    body = _body(msgs, system=[text("billing"), text("", cache_control=EPH)],
                 tools=[_tool("W", defer_loading=True), {"type": "web_search_20250305", "name": "web_search"}],
                 thinking={"type": "adaptive", "display": "updates"}, context_management={}, output_config={},
                 safeguards=[], max_tokens=999999, temperature=0.2, top_k=1)
    r = run(body, betas=["claude-code-20250219", "interleaved-thinking-2025-05-14"],
            extra_strip=["metadata"])
    validate_bedrock_body(r.body, SONNET45)
    assert r.body["max_tokens"] == 64000
    assert r.body["system"] == [text("billing", cache_control=EPH)]


def test_benchmark_long_conversation():
    msgs = [{"role": "user", "content": "start"}]
    for k in range(300):
        msgs.append({"role": "assistant", "content": [
            {"type": "thinking", "thinking": "x" * 2000, "signature": "S" * 400},
            {"type": "tool_use", "id": f"toolu_{k}", "name": "Bash", "input": {"command": "ls"}}]})
        msgs.append({"role": "user", "content": [{"type": "tool_result", "tool_use_id": f"toolu_{k}",
                                                  "content": "y" * 5000}]})
    msgs[-1]["content"][0]["cache_control"] = EPH
    body = _body(msgs, thinking={"type": "adaptive"})
    t0 = time.perf_counter()
    result = sanitize_bedrock(body, betas=(), profile=SONNET45)
    elapsed = time.perf_counter() - t0
    print(f"\nsanitize_bedrock(601 messages, {len(json.dumps(body)) / 1e6:.1f} MB): {elapsed * 1e3:.2f} ms")
    assert result.body["messages"] is msgs
    assert elapsed < 0.05


# --------------------------------------------------------------------------- thinking next to tools

_THOUGHT = {"type": "thinking", "thinking": "list it", "signature": "sig"}


def test_thinking_dropped_for_a_forced_tool_choice():
    for choice in ({"type": "any"}, {"type": "tool", "name": "Bash"}):
        r = run(_body(tools=[BASH_TOOL], tool_choice=choice,
                      thinking={"type": "enabled", "budget_tokens": 2000}))
        assert "thinking" not in r.body and r.body["tool_choice"] == choice
        assert "thinking.forced_tool" in r.repairs
    r = run(_body(tools=[BASH_TOOL], tool_choice={"type": "auto"},
                  thinking={"type": "enabled", "budget_tokens": 2000}))
    assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 2000}


def test_thinking_dropped_in_a_tool_loop_without_its_thinking_block():
    r = run(_body(BASH_TOOL_LOOP, tools=[BASH_TOOL],
                  thinking={"type": "enabled", "budget_tokens": 2000}))
    assert "thinking" not in r.body and "thinking.tool_loop" in r.repairs
    ask, call, result = BASH_TOOL_LOOP
    with_thought = [ask, {**call, "content": [_THOUGHT] + call["content"]}, result]
    r = run(_body(with_thought, tools=[BASH_TOOL],
                  thinking={"type": "enabled", "budget_tokens": 2000}))
    assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert r.body["messages"][1]["content"][0] == _THOUGHT


def test_adaptive_thinking_may_follow_a_turn_that_did_not_think():
    r = run(_body(BASH_TOOL_LOOP, tools=[BASH_TOOL], thinking={"type": "adaptive"}), OPUS47)
    assert r.body["thinking"] == {"type": "adaptive"}


def test_the_pivot_profile_keeps_thinking_and_sampling_for_gpt_and_gemini():
    from app.translate.profiles import PIVOT_PROFILE

    r = run(_body(BASH_TOOL_LOOP, tools=[BASH_TOOL], tool_choice={"type": "any"}, temperature=0.2,
                  thinking={"type": "enabled", "budget_tokens": 2000}), PIVOT_PROFILE)
    assert r.body["thinking"] == {"type": "enabled", "budget_tokens": 2000}
    assert r.body["temperature"] == 0.2
