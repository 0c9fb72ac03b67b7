"""gemini_from_anthropic rule by rule (sap-ai-core.md §9.1), the tool-id format that carries
thoughtSignature across turns, GeminiProfile defaults and overrides, and gemini_path."""

from __future__ import annotations

import base64
import dataclasses
import json
import random
import re

import pytest

from app.translate.gemini import (
    GeminiProfile,
    GeminiRequestError,
    GeminiToAnthropic,
    gemini_from_anthropic,
    gemini_path,
    gemini_profile_for,
    signature_from_tool_id,
    tool_use_id,
)
from app.translate.gemini.request import SKIP_SIGNATURE
from tests.unit.test_gemini_golden import GOLDEN, adapt_sse, check_gemini_body

PRO = gemini_profile_for("gemini-2.5-pro")
ID_CHARS = re.compile(r"^[a-zA-Z0-9_-]+$")


def translate(body, profile=PRO):
    result = gemini_from_anthropic(body, profile=profile)
    check_gemini_body(result.body, result.names, profile.strict_schema)
    return result


def with_messages(*messages, **extra):
    return {"max_tokens": 1000, "messages": list(messages), **extra}


def call(tool_id, name="Read", args=None):
    return {"type": "tool_use", "id": tool_id, "name": name, "input": args or {"file_path": "/a"}}


def result(tool_id, content="ok", **extra):
    return {"type": "tool_result", "tool_use_id": tool_id, "content": content, **extra}


# --------------------------------------------------------------------------- tool ids


@pytest.mark.parametrize("size", [1, 2, 3, 16, 47, 48, 1024, 3000])
def test_signature_round_trips_through_the_tool_id(size):
    signature = base64.b64encode(random.Random(size).randbytes(size)).decode()
    tool_id = tool_use_id("msg_gm_x", 3, signature)
    assert ID_CHARS.match(tool_id) and tool_id.startswith("toolu_gm")
    assert signature_from_tool_id(tool_id) == signature


def test_ids_without_signature_and_foreign_ids():
    plain = tool_use_id("msg_gm_x", 0)
    assert re.fullmatch(r"toolu_gm[0-9a-f]{16}", plain)
    assert signature_from_tool_id(plain) is None
    assert tool_use_id("msg_gm_x", 0) == plain and tool_use_id("msg_gm_x", 1) != plain
    assert tool_use_id("msg_gm_y", 0) != plain
    for foreign in ("toolu_01AbC", "toolu_bdrk_01X", "call_abc", "toolu_gmXYZ_abc", None, 7,
                    plain + "_a"):  # one base64 character cannot be a signature
        assert signature_from_tool_id(foreign) is None


def test_signature_from_a_streamed_call_reaches_the_next_request():
    raw = (GOLDEN / "stream" / "function_call_signature.in.sse").read_bytes()
    events, _ = adapt_sse([raw], {})
    start = next(json.loads(e) for e in events if '"tool_use"' in e)
    block = start["content_block"]
    body = with_messages({"role": "user", "content": "read"},
                         {"role": "assistant", "content": [dict(block, input={"file_path": "/repo/a.py"})]},
                         {"role": "user", "content": [result(block["id"], "print(1)")]})
    part = translate(body).body["contents"][1]["parts"][0]
    assert part == {"functionCall": {"name": "Read", "args": {"file_path": "/repo/a.py"}},
                    "thoughtSignature": "CiQBjz1rX2Vn+Qk0Yw/1Zp7mS2tq9a4bJvL8nXcE3dWfR0hUoKp="}


# --------------------------------------------------------------------------- contents


def test_roles_map_and_turns_are_never_merged_or_reordered():
    body = with_messages({"role": "user", "content": "a"}, {"role": "user", "content": [{"type": "text", "text": "b"}]},
                         {"role": "assistant", "content": "c"}, {"role": "assistant", "content": "d"},
                         {"role": "user", "content": "e"})
    contents = translate(body).body["contents"]
    assert [(c["role"], c["parts"][0]["text"]) for c in contents] == [
        ("user", "a"), ("user", "b"), ("model", "c"), ("model", "d"), ("user", "e")]


def test_function_response_uses_the_gemini_name_of_its_call_and_never_an_id():
    body = with_messages({"role": "user", "content": "go"},
                         {"role": "assistant", "content": [call("t1", "get weather"), call("t2", "Read")]},
                         {"role": "user", "content": [result("t2", [{"type": "text", "text": "R"}]),
                                                      result("t1", "W", is_error=True)]},
                         tools=[{"name": "get weather", "input_schema": {"type": "object", "properties": {
                             "city": {"type": "string"}}}}])
    out = translate(body)
    parts = out.body["contents"][2]["parts"]
    assert parts == [{"functionResponse": {"name": "Read", "response": {"content": "R"}}},
                     {"functionResponse": {"name": "get_weather", "response": {"error": "W"}}}]
    assert out.names.to_client("get_weather") == "get weather"
    assert '"id"' not in json.dumps(out.body)


def test_images_inside_a_tool_result_follow_its_function_response():
    image = {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}
    pdf = {"type": "document", "source": {"type": "base64", "media_type": "application/pdf", "data": "JVBE"}}
    body = with_messages({"role": "user", "content": "shot"},
                         {"role": "assistant", "content": [call("t1"), call("t2")]},
                         {"role": "user", "content": [result("t1", [image, {"type": "text", "text": "png"}, pdf]),
                                                      result("t2", "second")]})
    parts = translate(body).body["contents"][2]["parts"]
    assert parts == [
        {"functionResponse": {"name": "Read", "response": {"content": "png"}}},
        {"inlineData": {"mimeType": "image/png", "data": "AAAA"}},
        {"inlineData": {"mimeType": "application/pdf", "data": "JVBE"}},
        {"functionResponse": {"name": "Read", "response": {"content": "second"}}}]


def test_a_tool_result_without_its_tool_use_is_a_clear_error():
    body = with_messages({"role": "user", "content": [result("toolu_missing")]})
    with pytest.raises(GeminiRequestError, match=r"messages\.0\.content\.0\.tool_use_id: no tool_use block "
                                                 r"with id 'toolu_missing'"):
        gemini_from_anthropic(body, profile=PRO)
    assert isinstance(GeminiRequestError("x"), ValueError)


@pytest.mark.parametrize("body, message", [
    ([], "request body must be a JSON object"),
    ({"messages": []}, "messages: field required"),
    ({"messages": [{"role": "tool", "content": "x"}]}, r"messages\.0\.role"),
    ({"messages": [{"role": "user", "content": 3}]}, r"messages\.0\.content: must be"),
    ({"messages": [{"role": "user", "content": ""}]}, "nothing to send"),
    ({"messages": [{"role": "user", "content": [{"type": "image", "source": {"type": "url", "url": "https://x/y.png"}}]}]},
     "only base64 sources"),
    ({"messages": [{"role": "user", "content": [{"text": "no type"}]}]}, "string 'type'"),
    ({"messages": [{"role": "assistant", "content": [{"type": "tool_use", "id": "t", "name": "A", "input": [1]}]}]},
     r"input: must be an object"),
    ({"messages": [{"role": "user", "content": "x"}], "tools": [{"input_schema": {}}]}, r"tools\.0\.name"),
])
def test_bad_bodies(body, message):
    with pytest.raises(GeminiRequestError, match=message):
        gemini_from_anthropic(body, profile=PRO)


def test_thinking_blocks_are_dropped_and_empty_model_turns_left_out():
    body = with_messages({"role": "user", "content": "q"},
                         {"role": "assistant", "content": [{"type": "thinking", "thinking": "t", "signature": "s"},
                                                           {"type": "redacted_thinking", "data": "d"}]},
                         {"role": "user", "content": "again"})
    out = translate(body)
    assert [c["role"] for c in out.body["contents"]] == ["user", "user"]
    assert out.dropped == ()


def test_missing_signature_placeholder_only_for_unsigned_turns():
    gemini3 = gemini_profile_for("gemini-3-pro-preview")
    assert gemini3.missing_signature == SKIP_SIGNATURE
    signed = tool_use_id("m", 0, "c2ln")
    body = with_messages({"role": "user", "content": "q"},
                         {"role": "assistant", "content": [{"type": "text", "text": "x"}, call("toolu_01"), call("toolu_02")]},
                         {"role": "user", "content": [result("toolu_01"), result("toolu_02")]},
                         {"role": "assistant", "content": [call(signed), call("toolu_03")]},
                         {"role": "user", "content": [result(signed), result("toolu_03")]})
    contents = translate(body, gemini3).body["contents"]
    assert [p.get("thoughtSignature") for p in contents[1]["parts"]] == [None, SKIP_SIGNATURE, None]
    assert [p.get("thoughtSignature") for p in contents[3]["parts"]] == ["c2ln", None]
    plain = translate(body).body["contents"]  # 2.5: no placeholder
    assert [p.get("thoughtSignature") for p in plain[1]["parts"]] == [None, None, None]


# --------------------------------------------------------------------------- tools and config


TOOL = {"name": "Read", "input_schema": {"type": "object", "properties": {"p": {"type": "string"}}}}


@pytest.mark.parametrize("choice, expected", [
    ({"type": "auto"}, {"functionCallingConfig": {"mode": "AUTO"}}),
    ({"type": "any"}, {"functionCallingConfig": {"mode": "ANY"}}),
    ({"type": "none"}, {"functionCallingConfig": {"mode": "NONE"}}),
    ({"type": "tool", "name": "Read"}, {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": ["Read"]}}),
    ({"type": "tool", "name": "Gone"}, None),
    (None, None),
])
def test_tool_choice(choice, expected):
    body = with_messages({"role": "user", "content": "x"}, tools=[TOOL])
    if choice is not None:
        body["tool_choice"] = choice
    out = translate(body)
    assert out.body.get("toolConfig") == expected
    assert ("tool_choice" in out.dropped) == (choice is not None and expected is None)


def test_server_tools_and_tools_without_parameters():
    body = with_messages({"role": "user", "content": "x"}, tools=[
        {"type": "web_search_20250305", "name": "web_search"}, {"type": "bash_20250124", "name": "bash"},
        {"type": "custom", "name": "NoArgs", "input_schema": {"type": "object", "properties": {}}},
        {"name": "Free", "description": "", "input_schema": {"type": "object", "additionalProperties": True}}])
    out = translate(body)
    assert out.body["tools"] == [{"functionDeclarations": [{"name": "NoArgs"}, {"name": "Free"}]}]
    assert out.dropped == ("tool.web_search_20250305", "tool.bash_20250124")


@pytest.mark.parametrize("thinking, profile, expected", [
    ({"type": "enabled", "budget_tokens": 8000}, PRO, {"thinkingBudget": 8000, "includeThoughts": True}),
    ({"type": "enabled", "budget_tokens": 90000}, PRO, {"thinkingBudget": 32768, "includeThoughts": True}),
    ({"type": "enabled", "budget_tokens": 30000}, gemini_profile_for("gemini-2.5-flash"),
     {"thinkingBudget": 24576, "includeThoughts": True}),
    ({"type": "enabled"}, PRO, {"thinkingBudget": -1, "includeThoughts": True}),
    ({"type": "adaptive"}, PRO, {"thinkingBudget": -1, "includeThoughts": True}),
    ({"type": "disabled"}, PRO, None),
    (None, PRO, None),
    ({"type": "enabled", "budget_tokens": 8000}, gemini_profile_for("gemini-2.5-pro", {"thinking": False}), None),
    ({"type": "enabled", "budget_tokens": 8000}, gemini_profile_for("gemini-2.0-flash"), None),
])
def test_thinking_config(thinking, profile, expected):
    body = with_messages({"role": "user", "content": "x"})
    if thinking is not None:
        body["thinking"] = thinking
    assert translate(body, profile).body["generationConfig"].get("thinkingConfig") == expected


def test_generation_config():
    body = with_messages({"role": "user", "content": "x"}, max_tokens=200000, temperature=0.3, top_p=0.9,
                         top_k=20, stop_sequences=["a", "", 5, "b"])
    assert translate(body).body["generationConfig"] == {
        "maxOutputTokens": 65536, "temperature": 0.3, "topP": 0.9, "topK": 20, "stopSequences": ["a", "b"]}
    no_max = {"messages": [{"role": "user", "content": "x"}], "temperature": True}
    assert translate(no_max).body["generationConfig"] == {"maxOutputTokens": 65536}


def test_system_string_and_blocks():
    assert translate(with_messages({"role": "user", "content": "x"}, system="S")).body["systemInstruction"] == {
        "parts": [{"text": "S"}]}
    blocks = [{"type": "text", "text": "A", "cache_control": {"type": "ephemeral"}}, {"type": "text", "text": ""},
              {"type": "text", "text": "B"}]
    assert translate(with_messages({"role": "user", "content": "x"}, system=blocks)).body["systemInstruction"] == {
        "parts": [{"text": "A"}, {"text": "B"}]}
    assert "systemInstruction" not in translate(with_messages({"role": "user", "content": "x"}, system="")).body


# --------------------------------------------------------------------------- profile and path


@pytest.mark.parametrize("name, thinking, max_out, budget, placeholder", [
    ("gemini-2.5-pro", True, 65536, 32768, ""),
    ("gemini-2.5-flash", True, 65536, 24576, ""),
    ("gemini-2.5-flash-lite", True, 65536, 24576, ""),
    ("gemini-3-pro-preview", True, 65536, 32768, SKIP_SIGNATURE),
    ("gemini-2.0-flash", False, 8192, 24576, ""),
    ("something-else", False, 8192, 24576, ""),
])
def test_profile_defaults(name, thinking, max_out, budget, placeholder):
    profile = gemini_profile_for(name)
    assert (profile.name, profile.thinking, profile.max_output_tokens, profile.max_thinking_budget,
            profile.missing_signature, profile.strict_schema) == (name, thinking, max_out, budget, placeholder, True)


def test_profile_overrides_and_validation():
    profile = gemini_profile_for("gemini-2.5-pro", {"thinking": False, "max_output_tokens": 8192,
                                                     "strict_schema": False})
    assert (profile.thinking, profile.max_output_tokens, profile.strict_schema) == (False, 8192, False)
    with pytest.raises(ValueError, match="unknown Gemini profile field 'thinkng'"):
        gemini_profile_for("gemini-2.5-pro", {"thinkng": True})
    with pytest.raises(ValueError, match="must be true or false"):
        gemini_profile_for("gemini-2.5-pro", {"thinking": "yes"})
    with pytest.raises(ValueError, match="max_output_tokens"):
        GeminiProfile(max_output_tokens=0)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.thinking = True


def test_gemini_path():
    assert gemini_path("gemini-2.5-pro", stream=False) == "/models/gemini-2.5-pro:generateContent"
    assert gemini_path("gemini-2.5-pro", stream=True) == \
        "/models/gemini-2.5-pro:streamGenerateContent?alt=sse"
    assert gemini_path("gemini-2.5-pro", stream=True, alt_sse=False) == \
        "/models/gemini-2.5-pro:streamGenerateContent"
    for bad in ("Gemini-2.5-pro", "../x", "a/b", "", "gemini 2", ".hidden", "-x", "x:y", "x?alt=sse", None):
        with pytest.raises(ValueError):
            gemini_path(bad, stream=False)


def test_adapter_ids_are_what_the_request_side_parses():
    adapter = GeminiToAnthropic("m", "msg_gm_1")
    events = adapter.feed(json.dumps({"candidates": [{"content": {"parts": [
        {"functionCall": {"name": "A", "args": {}}, "thoughtSignature": "YWJjZA=="},
        {"functionCall": {"name": "B", "args": {}}}]}, "finishReason": "STOP"}]}))
    ids = [json.loads(e)["content_block"]["id"] for e in events if '"tool_use"' in e]
    assert [signature_from_tool_id(i) for i in ids] == ["YWJjZA==", None]
    assert ids == [tool_use_id("msg_gm_1", 0, "YWJjZA=="), tool_use_id("msg_gm_1", 1)]
