"""Request side for GPT deployments: profiles, chat_from_anthropic (golden files under
tests/golden/gpt/request/, plus a real Claude Code request run through the sanitizer first),
prepare_chat for OpenAI clients, tool ids and api paths.

``request/<case>.in.json`` holds ``{"profile": <SAP model>, "overrides"?: {...}, "stream"?:
bool, "body": <Anthropic body>}``; ``<case>.out.json`` the Azure chat body. Every output is
also checked against the Azure rules (sap-ai-core.md §8.1, clients-and-pain-points.md §4).
``UPDATE_GOLDEN=1`` rewrites the goldens (review the diff); a missing or different one fails.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import os
import re
from pathlib import Path

import pytest

from app.translate.gpt.request import (
    ATTACHMENT_NOTE,
    DEFAULT_API_VERSION,
    GptProfile,
    GptRequestError,
    MAX_TOOL_CALL_ID,
    api_path,
    azure_tool_id,
    chat_from_anthropic,
    gpt_profile_for,
    prepare_chat,
    reasoning_effort_for_budget,
)
from app.translate.gpt.response import message_from_chat_completion
from app.translate.profiles import PIVOT_PROFILE
from app.translate.sanitize import sanitize_bedrock
from tests.paths import CLAUDE_CODE_FIXTURES

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gpt" / "request"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
SAMPLING = ("temperature", "top_p", "presence_penalty", "frequency_penalty", "logprobs",
            "top_logprobs", "logit_bias")


def cases() -> list[str]:
    names = sorted(p.name[: -len(".in.json")] for p in GOLDEN.glob("*.in.json"))
    assert names, f"no golden inputs in {GOLDEN}"
    return names


def check_golden(path: Path, got: dict) -> None:
    text = json.dumps(got, indent=1, ensure_ascii=False) + "\n"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"missing golden {path.name} (UPDATE_GOLDEN=1 writes it)"
    assert json.loads(path.read_text(encoding="utf-8")) == got, \
        f"{path.name} differs (UPDATE_GOLDEN=1 rewrites it)"


def validate_azure_chat(chat: dict, profile: GptProfile) -> None:
    """The shape rules every translated body must keep."""
    assert "model" not in chat
    messages = chat["messages"]
    assert messages and all(m["role"] in ("system", "user", "assistant", "tool") for m in messages)
    pending: set = set()  # tool_call ids waiting for their tool message
    for i, message in enumerate(messages):
        if message["role"] == "tool":
            assert message["tool_call_id"] in pending, "tool message without its call"
            pending.discard(message["tool_call_id"])
            assert isinstance(message["content"], str)
            continue
        assert not pending, f"messages.{i}: tool calls {pending} not answered right after"
        if message["role"] == "assistant":
            assert message["content"] or message.get("tool_calls")
            for call in message.get("tool_calls", []):
                assert len(call["id"]) <= MAX_TOOL_CALL_ID and call["type"] == "function"
                assert isinstance(json.loads(call["function"]["arguments"]), dict)
                pending.add(call["id"])
        elif isinstance(message["content"], list):
            for part in message["content"]:
                assert part["type"] in ("text", "image_url", "file")
                if part["type"] == "image_url":
                    url = part["image_url"]["url"]
                    assert url.startswith(("data:image/", "https://"))
                if part["type"] == "text":
                    assert part["text"]
        else:
            assert message["content"]
    for tool in chat.get("tools", []):
        assert tool["type"] == "function" and "$schema" not in tool["function"]["parameters"]
        assert set(tool["function"]) <= {"name", "description", "parameters"}
    if "tool_choice" in chat:
        assert "tools" in chat
    assert "max_tokens" not in chat
    if profile.max_output_tokens and "max_completion_tokens" in chat:
        assert chat["max_completion_tokens"] <= profile.max_output_tokens
    if profile.reasoning:
        assert not set(chat) & set(SAMPLING) - {"temperature"} and "temperature" not in chat
    else:
        assert "reasoning_effort" not in chat
    if chat.get("stream"):
        assert chat["stream_options"] == {"include_usage": True}
    else:
        assert "stream_options" not in chat and "stream" not in chat


# --------------------------------------------------------------------------- goldens


@pytest.mark.parametrize("case", cases())
def test_chat_from_anthropic_golden(case):
    spec = json.loads((GOLDEN / f"{case}.in.json").read_text(encoding="utf-8"))
    profile = gpt_profile_for(spec["profile"], spec.get("overrides"))
    before = copy.deepcopy(spec["body"])
    chat = chat_from_anthropic(spec["body"], profile=profile, stream=spec.get("stream"))
    assert spec["body"] == before, "the input body was mutated"
    validate_azure_chat(chat, profile)
    check_golden(GOLDEN / f"{case}.out.json", chat)


#: The sanitizer profile the translated paths normalise with before translating (as the
#: gateway's backends module does): adaptive thinking and output_config are kept.
PIVOT = PIVOT_PROFILE  # what app/backends.py normalises GPT-bound bodies with


def claude_code_request(name: str, line: int) -> dict:
    path = CLAUDE_CODE_FIXTURES / "2.1.332" / f"{name}.jsonl"
    assert path.exists(), f"Claude Code fixture {path} is missing"
    return json.loads(path.read_text(encoding="utf-8").splitlines()[line])


def test_real_claude_code_request_after_the_sanitizer():
    """tools.jsonl line 1: $schema tools, the deferred-tool placeholder, a role:"system"
    message, a tool_use/tool_result round, adaptive thinking with output_config."""
    record = claude_code_request("tools", 1)
    headers = {k.lower(): v for k, v in record["headers"]}
    raw = record["body"]
    assert any(m["role"] == "system" for m in raw["messages"])
    assert all("$schema" in t["input_schema"] for t in raw["tools"] if t["name"] == "Read")
    sanitized = sanitize_bedrock(raw, betas=headers.get("anthropic-beta", "").split(","),
                                 profile=PIVOT).body
    assert sanitized["thinking"]["type"] == "adaptive" and sanitized["output_config"]["effort"] == "high"
    profile = gpt_profile_for("gpt-5")
    chat = chat_from_anthropic(sanitized, profile=profile, stream=raw["stream"])
    validate_azure_chat(chat, profile)
    roles = [m["role"] for m in chat["messages"]]
    assert roles == ["system", "user", "assistant", "tool"]  # the system message was folded
    assert chat["messages"][0]["content"] == "\n\n".join(b["text"] for b in raw["system"])
    call = chat["messages"][2]["tool_calls"][0]
    assert call["id"] == chat["messages"][3]["tool_call_id"]
    assert "Bash" in [t["function"]["name"] for t in chat["tools"]]
    assert chat["reasoning_effort"] == "high" and chat["max_completion_tokens"] == 32000
    assert chat["stream"] is True
    check_golden(GOLDEN / "claude_code_tools_1.out.json", chat)


def test_web_search_sub_request_keeps_no_server_tool():
    """websearch.jsonl line 2: Claude Code's WebSearch sub-request (only a server tool)."""
    raw = claude_code_request("websearch", 2)["body"]
    assert [t["type"] for t in raw["tools"]] == ["web_search_20250305"]
    chat = chat_from_anthropic(raw, profile=gpt_profile_for("gpt-4.1"))
    assert "tools" not in chat and "tool_choice" not in chat
    validate_azure_chat(chat, gpt_profile_for("gpt-4.1"))


# --------------------------------------------------------------------------- rules


def chat_for(messages, profile="gpt-4o", **body):
    return chat_from_anthropic({"max_tokens": 100, "messages": messages, **body},
                               profile=gpt_profile_for(profile))


def test_tool_results_stay_tool_messages_right_after_the_call_and_images_follow():
    chat = chat_for([
        {"role": "user", "content": "go"},
        {"role": "assistant", "content": [{"type": "tool_use", "id": "t1", "name": "a", "input": {}},
                                          {"type": "tool_use", "id": "t2", "name": "b", "input": {}}]},
        {"role": "user", "content": [
            {"type": "tool_result", "tool_use_id": "t1", "content": [
                {"type": "image", "source": {"type": "base64", "media_type": "image/png", "data": "AAAA"}}]},
            {"type": "tool_result", "tool_use_id": "t2", "content": "two"}]}])
    assert [m["role"] for m in chat["messages"]] == ["user", "assistant", "tool", "tool", "user"]
    assert chat["messages"][2] == {"role": "tool", "tool_call_id": "t1", "content": ATTACHMENT_NOTE}
    assert chat["messages"][3] == {"role": "tool", "tool_call_id": "t2", "content": "two"}
    assert chat["messages"][4] == {"role": "user", "content": [
        {"type": "image_url", "image_url": {"url": "data:image/png;base64,AAAA"}}]}


@pytest.mark.parametrize("block, path", [
    ({"type": "server_tool_use", "id": "srvtoolu_1", "name": "web_search", "input": {}},
     "messages.1.content.0.type"),
    ({"type": "container_upload", "file_id": "f"}, "messages.1.content.0.type"),
])
def test_unknown_assistant_blocks_are_a_clear_client_error(block, path):
    with pytest.raises(GptRequestError, match=re.escape(path)):
        chat_for([{"role": "user", "content": "q"}, {"role": "assistant", "content": [block]}])


@pytest.mark.parametrize("content, message", [
    ([{"type": "audio", "data": "x"}], "messages.0.content.0.type: 'audio' blocks cannot be sent"),
    ([{"type": "image", "source": {"type": "file", "file_id": "f"}}], "messages.0.content.0.source.type"),
    ([{"type": "document", "source": {"type": "url", "url": "https://x.test/a.pdf"}}],
     "messages.0.content.0.source"),
    ([{"type": "tool_result", "tool_use_id": "t", "content": [{"type": "video"}]}],
     "messages.0.content.0.content.0.type"),
    ([{"type": "tool_result", "content": "x"}], "messages.0.content.0.tool_use_id"),
    ([{"text": "no type"}], "messages.0.content.0: must be an object with a string 'type'"),
    (7, "messages.0.content: must be a string or a list of blocks"),
])
def test_bad_user_content(content, message):
    with pytest.raises(GptRequestError, match=re.escape(message)):
        chat_for([{"role": "user", "content": content}])


def test_empty_turns_send_nothing_but_no_messages_at_all_is_an_error():
    chat = chat_for([{"role": "user", "content": ""}, {"role": "assistant", "content": []},
                     {"role": "user", "content": [{"type": "text", "text": ""}]},
                     {"role": "user", "content": "x"}])
    assert chat["messages"] == [{"role": "user", "content": "x"}]
    with pytest.raises(GptRequestError, match="messages: field required"):
        chat_from_anthropic({"messages": []}, profile=gpt_profile_for("gpt-4o"))


def test_other_errors_name_the_field():
    with pytest.raises(GptRequestError, match="request body must be a JSON object"):
        chat_from_anthropic([], profile=gpt_profile_for("gpt-4o"))
    with pytest.raises(GptRequestError, match=r"messages\.0\.role"):
        chat_for([{"role": "tool", "content": "x"}])
    with pytest.raises(GptRequestError, match="max_tokens: must be a positive integer"):
        chat_for([{"role": "user", "content": "x"}], max_tokens="9")
    with pytest.raises(GptRequestError, match="tool_choice.type"):
        chat_for([{"role": "user", "content": "x"}], tools=[{"name": "a"}],
                 tool_choice={"type": "sometimes"})
    with pytest.raises(GptRequestError, match=r"system\.0\.type"):
        chat_for([{"role": "user", "content": "x"}], system=[{"type": "image"}])
    assert issubclass(GptRequestError, ValueError)


@pytest.mark.parametrize("budget, effort", [
    (1024, "low"), (2048, "low"), (2049, "medium"), (8192, "medium"), (8193, "high"),
    (31999, "high"), (None, "medium")])
def test_reasoning_effort_by_budget(budget, effort):
    assert reasoning_effort_for_budget(budget) == effort
    thinking = {"type": "enabled", "budget_tokens": budget}
    assert chat_for([{"role": "user", "content": "x"}], "o3", thinking=thinking)[
        "reasoning_effort"] == effort


@pytest.mark.parametrize("body, effort", [
    ({"thinking": {"type": "adaptive"}}, "medium"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "high"}}, "high"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "max"}}, "high"),
    ({"thinking": {"type": "adaptive"}, "output_config": {"effort": "odd"}}, "medium"),
    ({"output_config": {"effort": "low"}}, "low"),
    ({"thinking": {"type": "disabled"}, "output_config": {"effort": "low"}}, None),
    ({}, None),
])
def test_reasoning_effort_adaptive_and_effort(body, effort):
    chat = chat_for([{"role": "user", "content": "x"}], "gpt-5", **body)
    assert chat.get("reasoning_effort") == effort
    assert "reasoning_effort" not in chat_for([{"role": "user", "content": "x"}], "gpt-4.1", **body)


def test_stream_flag_from_body_or_keyword():
    base = {"max_tokens": 5, "messages": [{"role": "user", "content": "x"}]}
    profile = gpt_profile_for("gpt-4o")
    assert chat_from_anthropic({**base, "stream": True}, profile=profile)["stream_options"] == \
        {"include_usage": True}
    assert "stream" not in chat_from_anthropic({**base, "stream": True}, profile=profile, stream=False)
    assert chat_from_anthropic(base, profile=profile, stream=True)["stream"] is True


def test_round_trip_ids_azure_sees_its_own_call_ids_again():
    completion = {"id": "chatcmpl-9", "choices": [{"index": 0, "finish_reason": "tool_calls",
        "message": {"role": "assistant", "content": None, "tool_calls": [
            {"id": "call_Q9wErT5yU7iO1pA3sD5fG7hJ", "type": "function",
             "function": {"name": "Read", "arguments": '{"path":"a"}'}}]}}]}
    message = message_from_chat_completion(completion, model="gpt-5")
    (block,) = message["content"]
    assert block["id"] == "toolu_call_Q9wErT5yU7iO1pA3sD5fG7hJ"
    chat = chat_for([{"role": "user", "content": "q"}, {"role": "assistant", "content": message["content"]},
                     {"role": "user", "content": [{"type": "tool_result", "tool_use_id": block["id"],
                                                   "content": "ok"}]}])
    assert chat["messages"][1]["tool_calls"][0]["id"] == "call_Q9wErT5yU7iO1pA3sD5fG7hJ"
    assert chat["messages"][2]["tool_call_id"] == "call_Q9wErT5yU7iO1pA3sD5fG7hJ"


@pytest.mark.parametrize("tool_id, expected", [
    ("toolu_bdrk_01XyZ", "toolu_bdrk_01XyZ"),
    ("toolu_call_1", "call_1"),
    ("toolu_callx", "toolu_callx"),
    ("call_1", "call_1"),
    ("x" * 40, "x" * 40),
])
def test_azure_tool_id(tool_id, expected):
    assert azure_tool_id(tool_id) == expected


def test_long_tool_ids_are_shortened_the_same_way_and_do_not_collide():
    a, b = "toolu_" + "a" * 40, "toolu_" + "a" * 39 + "b"
    assert len(azure_tool_id(a)) == MAX_TOOL_CALL_ID == len(azure_tool_id(b))
    assert azure_tool_id(a) == azure_tool_id(a) != azure_tool_id(b)
    assert azure_tool_id(a).startswith("toolu_aaaa")
    with pytest.raises(GptRequestError):
        azure_tool_id("")


# --------------------------------------------------------------------------- profiles


@pytest.mark.parametrize("name, reasoning, limit", [
    ("gpt-4o", False, 16384), ("gpt-4o-mini", False, 16384), ("gpt-4.1", False, 32768),
    ("gpt-4.1-nano", False, 32768), ("gpt-5", True, 128000), ("gpt-5-mini", True, 128000),
    ("gpt-5.4", True, 128000), ("gpt-5-chat", False, 16384), ("o1", True, 100000),
    ("o3", True, 100000), ("o3-mini", True, 100000), ("o4-mini", True, 100000),
    ("gpt-35-turbo", False, None), ("GPT-5", True, 128000), ("azure-openai--o3", True, 100000),
])
def test_profile_defaults(name, reasoning, limit):
    profile = gpt_profile_for(name)
    assert (profile.reasoning, profile.max_output_tokens) == (reasoning, limit)
    assert profile.api_version == DEFAULT_API_VERSION and profile.name == name


def test_profile_overrides_and_validation():
    profile = gpt_profile_for("gpt-4o", {"api_version": "2024-12-01-preview", "max_output_tokens": None,
                                         "reasoning": True})
    assert profile == GptProfile(name="gpt-4o", reasoning=True, api_version="2024-12-01-preview",
                                 max_output_tokens=None)
    with pytest.raises(ValueError, match="unknown GPT profile field 'api-version'"):
        gpt_profile_for("gpt-4o", {"api-version": "x"})
    for bad in ({"reasoning": "yes"}, {"api_version": ""}, {"max_output_tokens": 0},
                {"max_output_tokens": True}):
        with pytest.raises(ValueError):
            gpt_profile_for("gpt-4o", bad)
    with pytest.raises(dataclasses.FrozenInstanceError):
        profile.reasoning = False  # type: ignore[misc]


def test_api_path():
    profile = gpt_profile_for("o3-mini", {"api_version": "2024-12-01-preview"})
    assert api_path(profile) == "/chat/completions?api-version=2024-12-01-preview"
    assert api_path(profile, embeddings=True) == "/embeddings?api-version=2024-12-01-preview"


# --------------------------------------------------------------------------- prepare_chat

CLIENT = {"model": "gpt-5", "messages": [{"role": "user", "content": "hi"}], "max_tokens": 50000,
          "temperature": 0.3, "top_p": 0.9, "presence_penalty": 0.1, "frequency_penalty": 0.2,
          "logprobs": True, "top_logprobs": 2, "logit_bias": {"50256": -100},
          "reasoning": {"effort": "low"}, "user": "u1", "tools": [], "stream": True,
          "stream_options": {"include_usage": False, "include_obfuscation": False}}


def test_prepare_chat_reasoning_model():
    before = copy.deepcopy(CLIENT)
    body, asked = prepare_chat(CLIENT, profile=gpt_profile_for("gpt-5"))
    assert CLIENT == before, "the input was mutated"
    assert body == {"messages": [{"role": "user", "content": "hi"}], "user": "u1", "tools": [],
                    "stream": True, "max_completion_tokens": 50000, "reasoning_effort": "low",
                    "stream_options": {"include_usage": True, "include_obfuscation": False}}
    assert asked is False


def test_stop_goes_only_to_models_that_take_it():
    for profile, kept in ((gpt_profile_for("gpt-5"), False), (gpt_profile_for("o3"), False),
                          (gpt_profile_for("gpt-4.1"), True)):
        body, _ = prepare_chat({**CLIENT, "stop": ["\nObservation:"]}, profile=profile)
        assert ("stop" in body) is kept, profile
        chat = chat_from_anthropic({"messages": [{"role": "user", "content": "hi"}],
                                    "max_tokens": 100, "stop_sequences": ["END"]}, profile=profile)
        assert ("stop" in chat) is kept, profile


def test_url_images_pass_the_pivot_to_gpt():
    body = {"max_tokens": 100, "messages": [{"role": "user", "content": [
        {"type": "image", "source": {"type": "url", "url": "https://example.com/a.png"}},
        {"type": "text", "text": "what is it?"}]}]}
    chat = chat_from_anthropic(sanitize_bedrock(body, betas=(), profile=PIVOT).body,
                               profile=gpt_profile_for("gpt-5"))
    parts = chat["messages"][0]["content"]
    assert {"type": "image_url", "image_url": {"url": "https://example.com/a.png"}} in parts


def test_prepare_chat_classic_model_keeps_sampling_and_clamps():
    body, asked = prepare_chat({**CLIENT, "stream_options": {"include_usage": True}},
                               profile=gpt_profile_for("gpt-4o"))
    assert asked is True and body["stream_options"] == {"include_usage": True}
    assert body["max_completion_tokens"] == 16384 and "max_tokens" not in body
    for key in SAMPLING:
        assert body[key] == CLIENT[key]
    assert "reasoning" not in body and "reasoning_effort" not in body and "model" not in body


@pytest.mark.parametrize("extra, expected", [
    ({"temperature": 1}, {"temperature": 1}),
    ({"temperature": 0}, {}),
    ({"max_tokens": 10, "max_completion_tokens": 20}, {"max_completion_tokens": 20}),
    ({"max_tokens": 10}, {"max_completion_tokens": 10}),
    ({"reasoning_effort": "high", "reasoning": {"effort": "low"}}, {"reasoning_effort": "high"}),
    ({"reasoning": "high"}, {}),
    ({"stream": False, "stream_options": {"include_usage": True}}, {"stream": False}),
    ({"stream_options": {"include_usage": True}}, {}),
])
def test_prepare_chat_rules(extra, expected):
    body, asked = prepare_chat({"model": "o3", "messages": [], **extra},
                               profile=gpt_profile_for("o3", {"max_output_tokens": None}))
    assert body == {"messages": [], **expected} and asked is False


def test_prepare_chat_stream_options_not_an_object_and_bad_limits():
    body, asked = prepare_chat({"messages": [], "stream": True, "stream_options": None},
                               profile=gpt_profile_for("gpt-4o"))
    assert body["stream_options"] == {"include_usage": True} and not asked
    with pytest.raises(GptRequestError, match="max_completion_tokens"):
        prepare_chat({"messages": [], "max_tokens": -1}, profile=gpt_profile_for("gpt-4o"))
    with pytest.raises(GptRequestError):
        prepare_chat("[]", profile=gpt_profile_for("gpt-4o"))


def test_search_results_and_content_documents_become_text_and_empty_parts_vanish():
    chat = chat_for([{"role": "user", "content": [
        {"type": "search_result", "source": "https://docs.test/a", "title": "A",
         "content": [{"type": "text", "text": "Alpha."}]},
        {"type": "search_result", "source": "", "title": "", "content": []},
        {"type": "document", "source": {"type": "content", "content": [{"type": "text", "text": "Body"}]}},
        {"type": "document", "source": {"type": "text", "media_type": "text/plain", "data": ""}},
        {"type": "thinking", "thinking": "stray", "signature": "s"},
        {"type": "text", "text": "Summarise."}]}])
    assert chat["messages"] == [{"role": "user", "content": [
        {"type": "text", "text": "A\nhttps://docs.test/a\nAlpha."},
        {"type": "text", "text": "Body"},
        {"type": "text", "text": "Summarise."}]}]
