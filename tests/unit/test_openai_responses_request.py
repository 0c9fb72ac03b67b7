"""translate_responses_request: what it refuses (each with the field's path) and the rules the
golden files do not spell out one by one."""

from __future__ import annotations

import pytest

from app.translate.openai.chat_request import DEFAULT_MAX_TOKENS, EFFORT_BUDGETS
from app.translate.openai.responses_request import (HOSTED_TOOLS, ResponsesRequest,
                                                    ResponsesRequestError,
                                                    translate_responses_request)

USER = {"role": "user", "content": "hi"}
SHELL = {"type": "function", "name": "shell", "parameters": {"type": "object", "properties": {}}}


def responses(**fields) -> dict:
    return {"model": "claude-sonnet-4-5", "input": [USER], **fields}


def call(arguments, call_id="call_1") -> dict:
    return {"type": "function_call", "call_id": call_id, "name": "shell", "arguments": arguments}


def user_parts(*parts) -> dict:
    return responses(input=[{"role": "user", "content": list(parts)}])


@pytest.mark.parametrize("body, where", [
    ([], "request body"),
    ({"input": "hi"}, "model"),
    (responses(model=" "), "model"),
    (responses(input=None), "input"),
    (responses(input=[]), "input"),
    (responses(input=5), "input"),
    (responses(input=[{"role": "developer", "content": "only instructions"}]), "input"),
    (responses(input=["hi"]), "input.0"),
    (responses(input=[{"role": "tool", "content": "x"}]), "input.0.role"),
    (responses(input=[{"type": "message", "content": "x"}]), "input.0.role"),
    (responses(input=[USER, {"type": "item_reference", "id": "msg_1"}]), "input.1"),
    (responses(input=[USER, {"type": "computer_call", "call_id": "c"}]), "input.1.type"),
    (responses(input=[USER, {"type": "custom_tool_call", "call_id": "c"}]), "input.1.type"),
    (responses(input=[USER, {"type": 7}]), "input.1.type"),
    (responses(input=[USER, {"type": "function_call", "name": "shell", "arguments": "{}"}]),
     "input.1.call_id"),
    (responses(input=[USER, {"type": "function_call", "call_id": "c", "arguments": "{}"}]),
     "input.1.name"),
    (responses(input=[USER, call("{}"), {"type": "function_call_output", "output": "x"}]),
     "input.2.call_id"),
    (responses(input=[USER, call("{}"), {"type": "function_call_output", "call_id": "call_1"}]),
     "input.2.output"),
    (responses(input=[USER, call("{}"), {"type": "function_call_output", "call_id": "call_1",
                                          "output": [{"type": "audio"}]}]),
     "input.2.output.0.type"),
    (responses(input=[{"role": "user", "content": 5}]), "input.0.content"),
    (user_parts({"type": "text", "text": "chat-style part"}), "input.0.content.0.type"),
    (user_parts({"type": "input_text"}), "input.0.content.0.text"),
    (user_parts({"type": "input_image", "file_id": "file-1"}), "input.0.content.0.file_id"),
    (user_parts({"type": "input_image"}), "input.0.content.0.image_url"),
    (user_parts({"type": "input_image", "image_url": "ftp://host/cat.png"}),
     "input.0.content.0.image_url"),
    (user_parts({"type": "input_image", "image_url": "data:image/tiff;base64,AAAA"}),
     "input.0.content.0.image_url"),
    (user_parts({"type": "input_file", "file_id": "file-1"}), "input.0.content.0.file_data"),
    (user_parts({"type": "input_file", "file_data": "data:text/plain;base64,QUJD"}),
     "input.0.content.0.file_data"),
    (user_parts({"type": "input_file", "file_data": "JVBERi0xLjQ="}),
     "input.0.content.0.file_data"),
    (responses(input=[{"role": "developer", "content": [
        {"type": "input_image", "image_url": "data:image/png;base64,AAAA"}]}, USER]),
     "input.0.content.0.type"),
    (responses(input=[USER, {"role": "assistant", "content": [{"type": "input_image"}]}]),
     "input.1.content.0.type"),
    (responses(instructions=["a"]), "instructions"),
    (responses(stream="yes"), "stream"),
    (responses(max_output_tokens=0), "max_output_tokens"),
    (responses(max_output_tokens="100"), "max_output_tokens"),
    (responses(max_output_tokens=True), "max_output_tokens"),
    (responses(temperature="hot"), "temperature"),
    (responses(temperature=-1), "temperature"),
    (responses(top_p=True), "top_p"),
    (responses(previous_response_id="resp_1"), "previous_response_id"),
    (responses(conversation="conv_1"), "conversation"),
    (responses(prompt={"id": "pmpt_1"}), "prompt"),
    (responses(background=True), "background"),
    (responses(text="json"), "text"),
    (responses(text={"format": {"type": "json_schema", "name": "x", "schema": {}}}), "text.format"),
    (responses(text={"format": {"type": "json_object"}}), "text.format"),
    (responses(text={"format": {"type": "yaml"}}), "text.format"),
    (responses(tools={"type": "function"}), "tools"),
    (responses(tools=["shell"]), "tools.0"),
    (responses(tools=[{"type": "custom", "name": "apply_patch"}]), "tools.0.type"),
    (responses(tools=[{"type": "local_shell"}]), "tools.0.type"),
    (responses(tools=[{"type": "computer_use_preview"}]), "tools.0.type"),
    (responses(tools=[{"type": "function", "description": "x"}]), "tools.0.name"),
    (responses(tools=[{"type": "function", "name": "f", "parameters": []}]), "tools.0.parameters"),
    (responses(tools=[SHELL], tool_choice="sometimes"), "tool_choice"),
    (responses(tools=[SHELL], tool_choice={"type": "function"}), "tool_choice"),
    (responses(tools=[SHELL], tool_choice={"type": "function", "function": {"name": "shell"}}),
     "tool_choice"),
    (responses(tools=[SHELL], tool_choice={"type": "allowed_tools", "mode": "auto", "tools": []}),
     "tool_choice"),
    (responses(tools=[SHELL], tool_choice={"type": "web_search_preview"}), "tool_choice"),
    (responses(tools=[SHELL], parallel_tool_calls="no"), "parallel_tool_calls"),
    (responses(reasoning="high"), "reasoning"),
    (responses(reasoning={"effort": "extreme"}), "reasoning.effort"),
])
def test_invalid_requests_name_the_field(body, where):
    with pytest.raises(ResponsesRequestError) as info:
        translate_responses_request(body)
    assert str(info.value).startswith(where + ":") or str(info.value).startswith(where + " "), \
        str(info.value)
    assert isinstance(info.value, ValueError)


def test_stateless_refusals_say_why():
    for body in (responses(previous_response_id="resp_1"),
                 responses(input=[USER, {"type": "item_reference", "id": "msg_1"}])):
        with pytest.raises(ResponsesRequestError, match="stateless"):
            translate_responses_request(body)


def test_null_state_fields_and_text_format_text_are_fine():
    result = translate_responses_request(responses(
        previous_response_id=None, conversation=None, prompt=None, background=False,
        text={"format": {"type": "text"}}, reasoning={"effort": None, "summary": "auto"}))
    assert isinstance(result, ResponsesRequest) and "thinking" not in result.body
    assert result.ignored == ()


def test_every_hosted_tool_is_dropped_and_reported_in_order():
    kinds = sorted(HOSTED_TOOLS)
    result = translate_responses_request(responses(tools=[{"type": k} for k in kinds] + [SHELL]))
    assert result.dropped_tools == tuple(kinds)
    assert [t["name"] for t in result.body["tools"]] == ["shell"]
    assert [t["name"] for t in result.echo["tools"]] == ["shell"]


def test_skipped_items_leave_no_trace_and_neighbours_merge():
    result = translate_responses_request(responses(input=[
        USER,
        {"role": "assistant", "content": [{"type": "output_text", "text": "Looking."}]},
        {"type": "reasoning", "id": "rs_1", "summary": []},
        {"type": "web_search_call", "id": "ws_1", "status": "completed"},
        call('{"cmd": "ls"}'),
        {"type": "function_call_output", "call_id": "call_1", "output": "a.py"},
        {"role": "user", "content": [{"type": "input_text", "text": "thanks"}]},
    ]))
    assert [m["role"] for m in result.body["messages"]] == ["user", "assistant", "user"]
    assert [b["type"] for b in result.body["messages"][1]["content"]] == ["text", "tool_use"]
    assert [b["type"] for b in result.body["messages"][2]["content"]] == ["tool_result", "text"]


def test_empty_assistant_text_is_dropped_and_empty_user_content_makes_no_turn():
    result = translate_responses_request(responses(input=[
        USER, {"role": "user", "content": []},
        {"role": "assistant", "content": [{"type": "output_text", "text": ""}]},
        {"role": "user", "content": "again"}]))
    assert result.body["messages"] == [
        {"role": "user", "content": [{"type": "text", "text": "hi"},
                                     {"type": "text", "text": "again"}]}]


@pytest.mark.parametrize("arguments", ["{not json", "[1]", 42])
def test_history_arguments_that_are_not_an_object_are_kept_wrapped(arguments):
    body = translate_responses_request(responses(input=[USER, call(arguments)])).body
    tool_use = body["messages"][1]["content"][0]
    assert tool_use["type"] == "tool_use" and tool_use["input"] == {"arguments": arguments}


def test_arguments_may_be_empty_or_an_object_and_user_sets_metadata():
    result = translate_responses_request(responses(
        user="u-1", input=[USER, call(""), call({"a": 1}, "call_2")]))
    calls = result.body["messages"][1]["content"]
    assert [c["input"] for c in calls] == [{}, {"a": 1}]
    assert result.body["metadata"] == {"user_id": "u-1"}


@pytest.mark.parametrize("effort, budget", [("low", 1024), ("medium", 4096), ("high", 16384),
                                             ("xhigh", 16384), ("max", 16384)])
def test_reasoning_effort_uses_chat_budgets(effort, budget):
    body = translate_responses_request(responses(reasoning={"effort": effort})).body
    assert body["thinking"] == {"type": "enabled", "budget_tokens": budget}
    assert body["max_tokens"] == DEFAULT_MAX_TOKENS + budget
    assert budget == EFFORT_BUDGETS[{"xhigh": "high", "max": "high"}.get(effort, effort)]


def test_thinking_left_out_when_the_client_maximum_leaves_no_room():
    body = translate_responses_request(responses(max_output_tokens=1024,
                                                 reasoning={"effort": "high"})).body
    assert "thinking" not in body and body["max_tokens"] == 1024


def test_default_max_tokens_option_replaces_the_default_and_bounds_thinking():
    plain = translate_responses_request(responses(), default_max_tokens=32000).body
    assert plain["max_tokens"] == 32000
    thinking = translate_responses_request(responses(reasoning={"effort": "high"}),
                                           default_max_tokens=8000).body
    assert thinking["max_tokens"] == 8000
    assert thinking["thinking"] == {"type": "enabled", "budget_tokens": 7999}
    client = translate_responses_request(responses(max_output_tokens=100),
                                         default_max_tokens=32000).body
    assert client["max_tokens"] == 100


def test_parallel_tool_calls_false_disables_parallel_use_and_is_echoed():
    result = translate_responses_request(responses(tools=[SHELL], parallel_tool_calls=False))
    assert result.body["tool_choice"] == {"type": "auto", "disable_parallel_tool_use": True}
    assert result.echo["parallel_tool_calls"] is False
    assert translate_responses_request(responses(tools=[SHELL])).echo["parallel_tool_calls"]


def test_function_tool_choice_names_the_tool():
    result = translate_responses_request(responses(
        tools=[SHELL], tool_choice={"type": "function", "name": "shell"}))
    assert result.body["tool_choice"] == {"type": "tool", "name": "shell"}
    assert result.echo["tool_choice"] == {"type": "function", "name": "shell"}


def test_tool_without_parameters_gets_an_empty_object_schema():
    result = translate_responses_request(responses(tools=[{"type": "function", "name": "now"}]))
    assert result.body["tools"] == [{"name": "now",
                                     "input_schema": {"type": "object", "properties": {}}}]


def test_unknown_fields_are_listed_as_ignored_and_known_ones_are_not():
    result = translate_responses_request(responses(
        store=False, include=["reasoning.encrypted_content"], prompt_cache_key="k",
        some_future_field=1, stream=True, instructions="x"))
    assert result.ignored == ("include", "prompt_cache_key", "some_future_field", "store")
    assert result.stream is True and result.body["stream"] is True
