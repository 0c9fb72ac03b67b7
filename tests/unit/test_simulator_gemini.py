"""The fake SAP AI Core's Gemini deployments (``app/simulator.py``), over real loopback HTTP.

``:generateContent`` (sap-ai-core.md §9.2), ``:streamGenerateContent`` (§9.3), the request rules
(§9.1, §9.5: roles, parts, ``functionResponse.id``, the schema subset, function names, the
function call/response turn order, thought signatures) and the scripted fault knobs. Every
rejection is paired with the valid form of the same request, which must pass.
"""

from __future__ import annotations

import copy
import json
import time
import weakref

import pytest
import requests

from app.simulator import (
    DEFAULT_REPLY,
    GEMINI_ERROR_EVENT_LINES,
    GEMINI_MALFORMED_LINE,
    THINKING_TEXT,
    FakeAICore,
    Step,
)

PRO = "gemini-2.5-pro"
CLOCK = 1767225600


@pytest.fixture
def fake():
    with FakeAICore() as server:
        server.clock = lambda: CLOCK
        server.add_deployment("pro", PRO)
        server.add_deployment("flash", "gemini-2.5-flash")
        server.add_deployment("g3", "gemini-3-pro-preview")  # requires thought signatures by default
        server.add_deployment("g20", "gemini-2.0-flash")  # no thinking mode
        yield server


_tokens: weakref.WeakKeyDictionary[FakeAICore, str] = weakref.WeakKeyDictionary()


def token_of(fake: FakeAICore) -> str:
    r = requests.post(fake.base_url + "/auth/oauth/token", auth=(fake.client_id, fake.client_secret),
                      data={"grant_type": "client_credentials"})
    return r.json()["access_token"]


def ai_headers(fake: FakeAICore, token: str | None = None) -> dict:
    if token is None:
        if fake not in _tokens:
            _tokens[fake] = token_of(fake)
        token = _tokens[fake]
    return {"Authorization": f"Bearer {token}", "AI-Resource-Group": "default"}


def call(fake, body, dep="pro", sse=False, model=None, alt=True, headers=None, **kwargs) -> requests.Response:
    """generateContent, or with ``sse`` streamGenerateContent (``?alt=sse`` unless ``alt`` is False)."""
    model = model or fake.get_deployment(dep).model_name
    operation = "streamGenerateContent" if sse else "generateContent"
    params = {"alt": "sse"} if sse and alt else {}
    data = body if isinstance(body, (bytes, str)) else json.dumps(body)
    return requests.post(f"{fake.base_url}/v2/inference/deployments/{dep}/models/{model}:{operation}",
                         params=params, data=data,
                         headers={**(headers or ai_headers(fake)), "Content-Type": "application/json"}, **kwargs)


def user(text="say hello") -> dict:
    return {"role": "user", "parts": [{"text": text}]}


def body_of(*contents, **changes) -> dict:
    body = {"contents": list(contents) or [user()]}
    body.update(changes)
    return body


def payloads(raw: bytes) -> list[str]:
    """The ``data:`` payloads of an SSE body (either line ending); one ``data:`` line per event."""
    text = raw.decode().replace("\r\n", "\n")
    assert text.endswith("\n\n")
    out = []
    for event in text.split("\n\n")[:-1]:
        assert event.startswith("data: ") and "\n" not in event, event[:80]
        out.append(event[len("data: "):])
    return out


def events_of(raw: bytes) -> list[dict]:
    return [json.loads(p) for p in payloads(raw)]


def parts_of(answer: dict) -> list[dict]:
    return answer["candidates"][0]["content"].get("parts", [])


def assemble(events: list[dict]) -> dict:
    """Thoughts, text, calls, finish reason and last usage of a stream."""
    thoughts, text, calls, finish = [], [], [], None
    for event in events:
        for candidate in event.get("candidates", []):
            for part in candidate["content"].get("parts", []):
                if "functionCall" in part:
                    calls.append(part)
                elif part.get("thought"):
                    thoughts.append(part["text"])
                else:
                    text.append(part.get("text", ""))
            finish = candidate.get("finishReason", finish)
    return {"thoughts": "".join(thoughts), "text": "".join(text), "calls": calls, "finish": finish,
            "usage": events[-1]["usageMetadata"]}


BASH = {"name": "Bash", "description": "Run a command",
        "parameters": {"type": "OBJECT", "properties": {"command": {"type": "STRING"}}, "required": ["command"]}}
READ = {"name": "Read", "parameters": {"type": "object", "properties": {"file_path": {"type": "string"}}}}
TOOLS = [{"functionDeclarations": [BASH, READ]}]
PARALLEL = [{"type": "text", "text": "Reading and listing."},
            {"type": "tool_use", "name": "Read", "input": {"file_path": "/src/a.py"}},
            {"type": "tool_use", "name": "Bash", "input": {"command": "ls -la"}}]


def model_call(*names, signature=None) -> dict:
    parts = [{"functionCall": {"name": n, "args": {}}} for n in names]
    if signature:
        parts[0]["thoughtSignature"] = signature
    return {"role": "model", "parts": parts}


def responses(*names, **extra) -> dict:
    return {"role": "user", "parts": [{"functionResponse": {"name": n, "response": {"content": "a.txt"}, **extra}}
                                      for n in names]}


# ---- the answer ---------------------------------------------------------------------------------


def test_generate_content_shape(fake):
    r = call(fake, body_of())
    assert r.status_code == 200, r.text
    answer = r.json()
    (candidate,) = answer["candidates"]
    assert candidate["content"] == {"role": "model", "parts": [{"text": DEFAULT_REPLY}]}
    assert candidate["finishReason"] == "STOP" and candidate["index"] == 0
    usage = answer["usageMetadata"]
    assert usage["promptTokenCount"] > 0 and usage["candidatesTokenCount"] > 0
    assert usage["thoughtsTokenCount"] > 0  # 2.5 thinks by default, even when thoughts are not shown
    assert usage["totalTokenCount"] == usage["promptTokenCount"] + usage["candidatesTokenCount"] \
        + usage["thoughtsTokenCount"]
    assert "cachedContentTokenCount" not in usage  # zero counts are left out
    assert answer["modelVersion"] == PRO and answer["createTime"] == "2026-01-01T00:00:00.000000Z"
    assert len(answer["responseId"]) > 10


def test_thinking_depends_on_model_and_config(fake):
    def thoughts(dep, thinking=None):
        body = body_of(generationConfig={"thinkingConfig": thinking}) if thinking is not None else body_of()
        r = call(fake, body, dep=dep)
        assert r.status_code == 200, r.text
        return r.json()["usageMetadata"].get("thoughtsTokenCount", 0)

    assert thoughts("g20") == 0
    assert thoughts("flash", {"thinkingBudget": 0}) == 0
    assert thoughts("flash", {"thinkingBudget": 16}) == 16
    assert thoughts("g3", {"thinkingLevel": "low"}) < thoughts("g3", {"thinkingLevel": "high"}) == thoughts("pro")


def test_thoughts_are_parts_when_included(fake):
    answer = call(fake, body_of(generationConfig={"thinkingConfig": {"includeThoughts": True}})).json()
    assert parts_of(answer) == [{"text": THINKING_TEXT, "thought": True}, {"text": DEFAULT_REPLY}]


def test_function_call_is_whole_and_signed(fake):
    answer = call(fake, body_of(user("run ls please"), tools=[{"functionDeclarations": [BASH]}])).json()
    text, part = parts_of(answer)
    assert text == {"text": "I'll run a shell command."}
    assert part["functionCall"] == {"name": "Bash", "args": {"command": "echo fake-tool-ok",
                                                             "description": "Echo a marker"}}
    assert part["thoughtSignature"] and "id" not in part["functionCall"]
    assert answer["candidates"][0]["finishReason"] == "STOP"


def test_parallel_calls_when_scripted(fake):
    fake.script("pro", Step(reply=PARALLEL))
    parts = parts_of(call(fake, body_of(tools=TOOLS)).json())
    assert [p.get("functionCall", {}).get("name") for p in parts] == [None, "Read", "Bash"]
    assert "thoughtSignature" in parts[1] and "thoughtSignature" not in parts[2]  # the first call carries it


def test_function_response_is_echoed(fake):
    body = body_of(user("run ls"), model_call("Bash"), responses("Bash"), tools=TOOLS)
    assert parts_of(call(fake, body).json()) == [{"text": "Tool said: a.txt"}]


def test_output_limit_gives_max_tokens(fake):
    # flash with a 16-token thinking budget; the greeting needs 8 more
    config = {"thinkingConfig": {"thinkingBudget": 16}}
    answer = call(fake, body_of(generationConfig={**config, "maxOutputTokens": 20}), dep="flash").json()
    assert answer["candidates"][0]["finishReason"] == "MAX_TOKENS"
    (part,) = parts_of(answer)
    assert DEFAULT_REPLY.startswith(part["text"]) and part["text"] != DEFAULT_REPLY
    starved = call(fake, body_of(generationConfig={**config, "maxOutputTokens": 10}), dep="flash").json()
    assert starved["candidates"][0] == {"content": {"role": "model"}, "finishReason": "MAX_TOKENS", "index": 0}
    fine = call(fake, body_of(generationConfig={**config, "maxOutputTokens": 30}), dep="flash").json()
    assert fine["candidates"][0]["finishReason"] == "STOP"


def test_gemini_3_signs_a_text_answer(fake):
    (part,) = parts_of(call(fake, body_of(), dep="g3").json())
    assert part["text"] == DEFAULT_REPLY and part["thoughtSignature"]
    assert "thoughtSignature" not in parts_of(call(fake, body_of()).json())[0]  # 2.5: only calls are signed


def test_snake_case_and_single_object_parts_are_accepted(fake):
    body = {"system_instruction": {"parts": {"text": "Be brief."}},
            "contents": [{"role": "user", "parts": {"text": "hi"}}],
            "generation_config": {"max_output_tokens": 70, "thinking_config": {"include_thoughts": True}}}
    r = call(fake, body)
    assert r.status_code == 200, r.text
    assert parts_of(r.json())[0]["thought"] is True  # the snake_case options were read
    body["generation_config"]["max_output_tokens"] = 66
    assert call(fake, body).json()["candidates"][0]["finishReason"] == "MAX_TOKENS"


def test_cached_tokens_on_long_prompts(fake):
    body = body_of(systemInstruction={"parts": [{"text": "You are a careful assistant. " * 200}]})
    usage = call(fake, body).json()["usageMetadata"]
    assert usage["promptTokenCount"] >= 1024 and 0 < usage["cachedContentTokenCount"] <= usage["promptTokenCount"] // 2


# ---- the stream ---------------------------------------------------------------------------------


def test_stream_grammar(fake):
    fake.stream_event_count = 5
    r = call(fake, body_of(), sse=True)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/event-stream")
    assert r.content.count(b"\r\n\r\n") == 5 and b"[DONE]" not in r.content  # Google's SSE: CRLF lines
    events = events_of(r.content)
    assert len(events) == 5
    assert len({e["responseId"] for e in events}) == 1 and all(e["modelVersion"] == PRO for e in events)
    texts = [parts_of(e)[0]["text"] for e in events]
    assert "".join(texts) == DEFAULT_REPLY
    assert [("finishReason" in e["candidates"][0]) for e in events] == [False] * 4 + [True]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    totals = [e["usageMetadata"]["totalTokenCount"] for e in events]
    candidates = [e["usageMetadata"].get("candidatesTokenCount", 0) for e in events]
    assert totals == sorted(totals) and candidates == sorted(candidates)  # cumulative
    assert all(e["usageMetadata"]["promptTokenCount"] == events[0]["usageMetadata"]["promptTokenCount"]
               for e in events)
    assert events[-1]["usageMetadata"] == call(fake, body_of()).json()["usageMetadata"]


def test_stream_without_alt_sse_is_a_json_array_of_the_same_objects(fake):
    def stable(objects):
        return [{k: v for k, v in e.items() if k != "responseId"} for e in objects]
    sse = stable(events_of(call(fake, body_of(), sse=True).content))
    with call(fake, body_of(), sse=True, alt=False, stream=True) as r:
        assert r.headers["Content-Type"].startswith("application/json")
        pieces = list(r.iter_content(chunk_size=None))
    assert pieces[0].startswith(b"[{") and pieces[-1] == b"]" and len(pieces) == len(sse) + 1
    assert stable(json.loads(b"".join(pieces))) == sse
    fake.gemini_array_without_alt_sse = False  # what some peers report through AI Core
    try:
        assert stable(events_of(call(fake, body_of(), sse=True, alt=False).content)) == sse
    finally:
        fake.gemini_array_without_alt_sse = True


def test_stream_thoughts_then_text_then_calls(fake):
    fake.script("pro", Step(reply=PARALLEL), Step(reply=PARALLEL))
    body = body_of(tools=TOOLS, generationConfig={"thinkingConfig": {"includeThoughts": True}})
    events = events_of(call(fake, body, sse=True).content)
    kinds = [("call" if "functionCall" in p else "thought" if p.get("thought") else "text")
             for e in events for p in parts_of(e)]
    assert kinds == ["thought", "thought", "text", "text", "text", "text", "call", "call"]
    last = parts_of(events[-1])
    assert [p["functionCall"]["name"] for p in last] == ["Read", "Bash"]  # all calls whole, in one chunk
    assert last[0]["thoughtSignature"] and "thoughtSignature" not in last[1]
    assert events[-1]["candidates"][0]["finishReason"] == "STOP"
    streamed = assemble(events)
    answer = call(fake, body).json()
    assert streamed["thoughts"] == parts_of(answer)[0]["text"]
    assert streamed["text"] == "Reading and listing."
    assert [c["functionCall"] for c in streamed["calls"]] == [p["functionCall"] for p in parts_of(answer)[2:]]
    assert streamed["usage"] == answer["usageMetadata"]


def test_stream_knobs_for_line_endings_and_usage_chunk(fake):
    fake.gemini_sse_crlf = False
    fake.gemini_trailing_usage_chunk = True
    raw = call(fake, body_of(), sse=True).content
    assert b"\r\n" not in raw
    events = events_of(raw)
    assert "candidates" not in events[-1] and events[-1]["usageMetadata"] == events[-2]["usageMetadata"]
    assert events[-2]["candidates"][0]["finishReason"] == "STOP"


# ---- routes -------------------------------------------------------------------------------------


def test_model_in_the_path_must_be_the_deployments(fake):
    r = call(fake, body_of(), model="gemini-2.5-flash")
    assert r.status_code == 404
    error = r.json()["error"]
    assert error["code"] == 404 and error["status"] == "NOT_FOUND" and "gemini-2.5-flash" in error["message"]
    r = requests.post(f"{fake.base_url}/v2/inference/deployments/pro/models/{PRO}:countTokens", json=body_of(),
                      headers=ai_headers(fake))
    assert r.status_code == 404
    assert call(fake, body_of()).status_code == 200
    assert [r.status for r in fake.inference_requests] == [404, 404, 200]


def test_malformed_json(fake):
    r = call(fake, b"{not json")
    assert r.status_code == 400
    assert r.json()["error"] == {"code": 400, "message": "Invalid JSON payload received. Unexpected token.",
                                 "status": "INVALID_ARGUMENT"}


# ---- request rules: each rejection, and the valid form of the same request ----------------------


def with_parameters(schema: dict) -> dict:
    return body_of(tools=[{"functionDeclarations": [{"name": "Read", "parameters": schema}]}])


PATH = "tools[0].function_declarations[0].parameters"
PROPERTY = {"type": "object", "properties": {"path": {"type": "string"}}}

#: case -> (rejected body, accepted body, message fragment)
RULES = {
    "unknown top-level name": (body_of(messages=[]), body_of(),
                               'Invalid JSON payload received. Unknown name "messages": Cannot find field.'),
    "assistant role": (body_of(user(), {"role": "assistant", "parts": [{"text": "hi"}]}, user("go on")),
                       body_of(user(), {"role": "model", "parts": [{"text": "hi"}]}, user("go on")),
                       "Please use a valid role: user, model."),
    "system role": (body_of({"role": "system", "parts": [{"text": "Be brief."}]}, user()),
                    body_of(user(), systemInstruction={"parts": [{"text": "Be brief."}]}),
                    "Please use a valid role: user, model."),
    "empty contents": (body_of(contents=[]), body_of(), "contents is not specified"),
    "empty parts": (body_of({"role": "user", "parts": []}), body_of(),
                    "must include at least one parts field"),
    "empty text": (body_of({"role": "user", "parts": [{"text": ""}]}), body_of(), "empty text parameter"),
    "Anthropic-style part": (body_of({"role": "user", "parts": [{"type": "text", "text": "hi"}]}), body_of(),
                             'Unknown name "type" at \'contents[0].parts[0]\''),
    "two data fields in a part": (body_of({"role": "user", "parts": [{"text": "a", "inlineData": {}}]}), body_of(),
                                  "required oneof field 'data'"),
    "functionResponse id": (body_of(user("run ls"), model_call("Bash"), responses("Bash", id="call_1"), tools=TOOLS),
                            body_of(user("run ls"), model_call("Bash"), responses("Bash"), tools=TOOLS),
                            'Unknown name "id" at \'contents[2].parts[0].function_response\''),
    "functionResponse response not an object": (
        body_of(user("run ls"), model_call("Bash"),
                {"role": "user", "parts": [{"functionResponse": {"name": "Bash", "response": "a.txt"}}]}),
        body_of(user("run ls"), model_call("Bash"), responses("Bash")), "google.protobuf.Struct"),
    "function response without a call turn": (
        body_of(user("run ls"), responses("Bash")), body_of(user("run ls"), model_call("Bash"), responses("Bash")),
        "function response turn comes immediately after a function call turn"),
    "function response name": (
        body_of(user("run ls"), model_call("Bash"), responses("Read")),
        body_of(user("run ls"), model_call("Bash"), responses("Bash")),
        "Function response name 'Read' does not match any function call of the previous turn"),
    "function response count": (
        body_of(user("go"), model_call("Bash", "Read"), responses("Bash")),
        body_of(user("go"), model_call("Bash", "Read"), responses("Bash", "Read")),
        "number of function response parts is equal to the number of function call parts"),
    "function call after a model turn": (
        body_of(user("go"), {"role": "model", "parts": [{"text": "ok"}]}, model_call("Bash"), responses("Bash")),
        body_of(user("go"), {"role": "model", "parts": [{"text": "ok"}, {"functionCall": {"name": "Bash"}}]},
                responses("Bash")),
        "function call turn comes immediately after a user turn or after a function response turn"),
    "type list": (with_parameters({"type": "object", "properties": {"path": {"type": ["string", "null"]}}}),
                  with_parameters({"type": "object", "properties": {"path": {"type": "string", "nullable": True}}}),
                  f'Unknown name "type" at \'{PATH}.properties[0].value\': Proto field is not repeating, cannot start '
                  "list."),
    "bad type": (with_parameters({"type": "dict"}), with_parameters({"type": "OBJECT"}), "v1.Type), \"dict\""),
    "enum of numbers": (with_parameters({"type": "integer", "enum": [1, 2]}),
                        with_parameters({"type": "string", "enum": ["1", "2"]}), f"{PATH}.enum[0]"),
    "maxOutputTokens range": (body_of(generationConfig={"maxOutputTokens": 65537}),
                              body_of(generationConfig={"maxOutputTokens": 65536}),
                              "supported range is from 1 (inclusive) to 65537 (exclusive)"),
    "unknown generationConfig name": (body_of(generationConfig={"max_tokens_out": 5}),
                                      body_of(generationConfig={"maxOutputTokens": 5}),
                                      'Unknown name "maxTokensOut" at \'generation_config\''),
    "thinking budget 0 on pro": (body_of(generationConfig={"thinkingConfig": {"thinkingBudget": 0}}),
                                 body_of(generationConfig={"thinkingConfig": {"thinkingBudget": 128}}),
                                 "Budget 0 is invalid. This model only works in thinking mode."),
    "calling mode": (body_of(tools=TOOLS, toolConfig={"functionCallingConfig": {"mode": "AUTOMATIC"}}),
                     body_of(tools=TOOLS, toolConfig={"functionCallingConfig": {"mode": "ANY",
                                                                               "allowedFunctionNames": ["Bash"]}}),
                     "function_calling_config.mode"),
}

#: The JSON Schema keywords Vertex's Schema does not know, each with the cleaned form (§9.5).
SCHEMA_KEYWORDS = {
    "$ref": ({"type": "object", "properties": {"p": {"$ref": "#/$defs/P"}}}, PROPERTY, f"{PATH}.properties[0].value"),
    "$schema": ({"$schema": "http://json-schema.org/draft-07/schema#", **PROPERTY}, PROPERTY, PATH),
    "additionalProperties": ({**PROPERTY, "additionalProperties": False}, PROPERTY, PATH),
    "$defs": ({**PROPERTY, "$defs": {"P": {"type": "string"}}}, PROPERTY, PATH),
    "exclusiveMinimum": ({"type": "object", "properties": {"n": {"type": "number", "exclusiveMinimum": 0}}},
                         {"type": "object", "properties": {"n": {"type": "number", "minimum": 0}}},
                         f"{PATH}.properties[0].value"),
    "const": ({"type": "object", "properties": {"k": {"type": "string", "const": "a"}}},
              {"type": "object", "properties": {"k": {"type": "string", "enum": ["a"]}}},
              f"{PATH}.properties[0].value"),
    "oneOf": ({"type": "object", "properties": {"v": {"oneOf": [{"type": "string"}, {"type": "integer"}]}}},
              {"type": "object", "properties": {"v": {"anyOf": [{"type": "string"}, {"type": "integer"}]}}},
              f"{PATH}.properties[0].value"),
    "allOf": ({"allOf": [PROPERTY]}, PROPERTY, PATH),
}
for _key, (_bad, _good, _at) in SCHEMA_KEYWORDS.items():
    RULES[f"schema keyword {_key}"] = (with_parameters(_bad), with_parameters(_good),
                                       f'Invalid JSON payload received. Unknown name "{_key}" at \'{_at}\': '
                                       "Cannot find field.")
for _bad_name, _good_name in [("1tool", "_tool"), ("my tool", "my.tool-x_1"), ("a" * 65, "a" * 64),
                              ("mcp:read", "mcp__read")]:
    RULES[f"function name {_bad_name[:10]}"] = (
        body_of(tools=[{"functionDeclarations": [{"name": _bad_name}]}]),
        body_of(tools=[{"functionDeclarations": [{"name": _good_name}]}]),
        "Invalid function name. Must start with a letter or an underscore.")


@pytest.mark.parametrize("case", list(RULES))
def test_rule_rejects_and_the_valid_form_passes(fake, case):
    bad, good, fragment = RULES[case]
    r = call(fake, bad)
    assert r.status_code == 400, r.text
    error = r.json()["error"]
    assert error["code"] == 400 and error["status"] == "INVALID_ARGUMENT"
    assert fragment in error["message"]
    r = call(fake, good)
    assert r.status_code == 200, r.text


def test_every_unknown_schema_keyword_is_listed(fake):
    r = call(fake, with_parameters({**PROPERTY, "additionalProperties": False, "$schema": "x"}))
    lines = r.json()["error"]["message"].split("\n")
    assert lines == [f'Invalid JSON payload received. Unknown name "additionalProperties" at \'{PATH}\': '
                     "Cannot find field.",
                     f'Invalid JSON payload received. Unknown name "$schema" at \'{PATH}\': Cannot find field.']


def test_schema_keyword_knob_and_non_strict(fake):
    body = with_parameters({**PROPERTY, "additionalProperties": False})
    assert call(fake, body).status_code == 400
    fake.gemini_schema_keys.add("additionalProperties")  # a newer model version
    assert call(fake, body).status_code == 200
    fake.strict = False
    assert call(fake, body_of(user("run ls"), model_call("Bash"), responses("Bash", id="x"))).status_code == 200


def test_thinking_config_on_a_model_without_thinking(fake):
    r = call(fake, body_of(generationConfig={"thinkingConfig": {"includeThoughts": True}}), dep="g20")
    assert r.status_code == 400 and "thinking is not supported" in r.json()["error"]["message"]
    assert call(fake, body_of(), dep="g20").status_code == 200
    no_thinking = body_of(generationConfig={"thinkingConfig": {"thinkingBudget": 0}})
    assert call(fake, no_thinking, dep="flash").status_code == 200


# ---- thought signatures -------------------------------------------------------------------------


def signed_turn(fake, dep: str) -> dict:
    """The model turn of a real answer (text + signed Bash call), as a client sends it back."""
    answer = call(fake, body_of(user("run ls"), tools=TOOLS), dep=dep).json()
    return answer["candidates"][0]["content"]


def test_signature_required_on_gemini_3(fake):
    turn = signed_turn(fake, "g3")
    assert turn["parts"][-1]["thoughtSignature"]
    good = body_of(user("run ls"), turn, responses("Bash"), tools=TOOLS)
    assert call(fake, good, dep="g3").status_code == 200

    stripped = copy.deepcopy(good)
    stripped["contents"][1]["parts"][-1].pop("thoughtSignature")
    r = call(fake, stripped, dep="g3")
    assert r.status_code == 400
    assert "Function call is missing a thought_signature in functionCall parts" in r.json()["error"]["message"]
    assert "`default_api:Bash` , position 2" in r.json()["error"]["message"]

    forged = copy.deepcopy(good)
    forged["contents"][1]["parts"][-1]["thoughtSignature"] = "Zm9yZ2Vk"
    r = call(fake, forged, dep="g3")
    assert r.status_code == 400 and "Thought signature is not valid" in r.json()["error"]["message"]

    bypass = copy.deepcopy(stripped)
    bypass["contents"][1]["parts"][-1]["thoughtSignature"] = "skip_thought_signature_validator"
    assert call(fake, bypass, dep="g3").status_code == 200

    older_turn = body_of(*stripped["contents"], {"role": "model", "parts": [{"text": "Done."}]}, user("thanks"))
    assert call(fake, older_turn, dep="g3").status_code == 200  # only the current turn is checked


def test_signature_knob_per_deployment(fake):
    unsigned = body_of(user("run ls"), model_call("Bash"), responses("Bash"), tools=TOOLS)
    assert call(fake, unsigned).status_code == 200  # 2.5: off by default
    fake.add_deployment("pro-strict", PRO, require_thought_signature=True)
    assert call(fake, unsigned, dep="pro-strict").status_code == 400
    assert call(fake, unsigned, dep="g3").status_code == 400
    fake.get_deployment("g3").require_thought_signature = False
    assert call(fake, unsigned, dep="g3").status_code == 200


# ---- fault knobs --------------------------------------------------------------------------------


def test_status_sequence_with_retry_after(fake):
    fake.script("pro", Step(status=429, retry_after=4), 500, 503, Step(status=403))
    r = call(fake, body_of())
    assert r.status_code == 429 and r.headers["Retry-After"] == "4"
    assert r.json()["error"]["status"] == "RESOURCE_EXHAUSTED" and r.json()["error"]["code"] == 429
    assert call(fake, body_of(), sse=True).json()["error"]["status"] == "INTERNAL"
    assert call(fake, body_of()).json()["error"]["status"] == "UNAVAILABLE"
    assert call(fake, body_of()).json() == {"message": "RBAC: access denied"}  # AI Core's own answer
    assert call(fake, body_of()).status_code == 200


def test_token_revoked_once(fake):
    token = token_of(fake)
    fake.script("pro", Step(revoke_token=True))
    r = call(fake, body_of(), headers=ai_headers(fake, token))
    assert r.status_code == 401 and r.json() == {"message": "Jwt is expired"}
    assert call(fake, body_of(), headers=ai_headers(fake, token)).status_code == 401
    assert call(fake, body_of(), headers=ai_headers(fake, token_of(fake))).status_code == 200


def test_delays(fake):
    fake.script("pro", Step(headers_delay=0.15), Step(first_event_delay=0.15, gap_after_event=(0, 0.1)))
    t0 = time.monotonic()
    assert call(fake, body_of()).status_code == 200
    assert time.monotonic() - t0 >= 0.15
    t0 = time.monotonic()
    with call(fake, body_of(), sse=True, stream=True) as r:
        headers_at = time.monotonic() - t0
        arrivals = [(time.monotonic() - t0, chunk) for chunk in r.iter_content(chunk_size=None)]
    assert headers_at < 0.15
    assert arrivals[0][0] >= 0.15
    assert arrivals[1][0] - arrivals[0][0] >= 0.1


@pytest.mark.parametrize("chunking", ["byte", "random", "crlf"])
def test_chunking_keeps_the_events(fake, chunking):
    fake.gemini_sse_crlf = False
    def stable(raw):
        return [{k: v for k, v in e.items() if k != "responseId"} for e in events_of(raw)]
    plain = stable(call(fake, body_of(), sse=True).content)
    fake.script("pro", Step(chunking=chunking))
    with call(fake, body_of(), sse=True, stream=True) as r:
        pieces = list(r.iter_content(chunk_size=None))
    raw = b"".join(pieces)
    assert stable(raw) == plain
    if chunking == "byte":
        assert len(pieces) == len(raw)
    if chunking == "crlf":
        assert raw.count(b"\r\n\r\n") == len(plain)


@pytest.mark.parametrize("shape", sorted(GEMINI_ERROR_EVENT_LINES) + ["typed_error_message"])
def test_mid_stream_error_event(fake, shape):
    fake.script("pro", Step(error_event=shape, error_after_events=2))
    lines = payloads(call(fake, body_of(), sse=True).content)
    assert len(lines) == 3
    expected = GEMINI_ERROR_EVENT_LINES["resource_exhausted" if shape == "typed_error_message" else shape]
    assert lines[-1] == expected
    if shape != "non_json":
        assert set(json.loads(lines[-1])["error"]) == {"code", "message", "status"}
    assert all("finishReason" not in line for line in lines)


def test_unknown_error_event_fails_before_the_first_byte(fake):
    fake.script("pro", Step(error_event="no_such_shape"))
    assert call(fake, body_of(), sse=True).status_code == 500


def test_eof_malformed_huge_and_raw_body(fake):
    fake.script("pro", Step(eof_after_events=2), Step(malformed_line_after=1), Step(huge_json_delta=True),
                Step(body="data: {}\n\n"), Step(body={"candidates": []}))
    events = events_of(call(fake, body_of(), sse=True).content)
    assert len(events) == 2 and all("finishReason" not in e["candidates"][0] for e in events)

    lines = payloads(call(fake, body_of(), sse=True).content)
    assert lines[1] == GEMINI_MALFORMED_LINE
    assert json.loads(lines[-1])["candidates"][0]["finishReason"] == "STOP"

    huge = assemble(events_of(call(fake, body_of(), sse=True).content))
    (part,) = huge["calls"]
    assert part["functionCall"]["name"] == "Write" and part["functionCall"]["args"]["content"] == "A" * 1_000_000

    assert call(fake, body_of(), sse=True).content == b"data: {}\n\n"
    assert call(fake, body_of()).json() == {"candidates": []}


def test_every_request_is_recorded(fake):
    body = body_of(tools=TOOLS)
    call(fake, body, sse=True)
    record = fake.inference_requests[-1]
    assert record.deployment_id == "pro" and record.path.endswith(f"/models/{PRO}:streamGenerateContent")
    assert record.query == {"alt": "sse"} and record.json == body and record.status == 200
    assert record.headers["AI-Resource-Group"] == "default" and record.headers["authorization"].startswith("Bearer ")
