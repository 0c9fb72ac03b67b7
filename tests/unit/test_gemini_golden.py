"""Gemini translation, golden files per direction (tests/golden/gemini/):

* ``schema/<case>.in.json`` (JSON Schema) -> ``.out.json`` (``clean_schema``);
* ``request/<case>.in.json`` (``{"profile", "overrides"?, "body"}``, an Anthropic body) ->
  ``.out.json`` (GenerateContent body, renamed tools, dropped items); plus real Claude Code
  requests from the shared fixtures after ``sanitize_bedrock`` (``claude_code__*.out.json``);
* ``response/<case>.in.json`` (GenerateContentResponse) -> ``.out.json`` (Bedrock-shaped
  message); ``<case>.args.json`` holds ``tools`` (client names) and ``message_id``;
* ``stream/<case>.in.sse`` (a ``:streamGenerateContent`` SSE recording) -> ``.out.sse`` (the
  adapter's Bedrock-style events as AI Core would send them), fed through the one SSE decoder
  split at every byte offset; ``stream/<case>.in.json`` is the JSON array stream form, fed
  through ``JsonArrayStreamSplitter`` split at every byte offset.

A missing or different golden file fails; ``UPDATE_GOLDEN=1`` rewrites them (review the diff).
Every adapter output is also fed to ``BedrockToAnthropicStream`` and ``ChatCompletionStream``
and checked against their client grammars, and every finished stream must accumulate to what
``message_from_gemini`` answers for the same chunks merged into one response.
"""

from __future__ import annotations

import copy
import json
import os
import re
from pathlib import Path

import pytest

from app.translate.bedrock_stream import BedrockToAnthropicStream
from app.translate.gemini import (
    FunctionNames,
    GeminiToAnthropic,
    JsonArrayStreamSplitter,
    clean_schema,
    gemini_from_anthropic,
    gemini_profile_for,
    message_from_gemini,
)
from app.translate.gemini.schema import DELETE, KEEP, valid_function_name
from app.translate.openai.chat_stream import ChatCompletionStream
from app.translate.profiles import PIVOT_PROFILE
from app.translate.sanitize import sanitize_bedrock
from app.wire.sse import SSEDecoder
from tests.paths import CLAUDE_CODE_FIXTURES
from tests.unit.test_bedrock_stream import validate_anthropic_stream
from tests.unit.test_openai_chat_golden import CREATED, ID, MODEL, check_grammar

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "gemini"
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
MESSAGE_ID = "msg_gm_golden"
TOOL_ID_RE = re.compile(r"^toolu_gm[0-9a-f]{16}(_[A-Za-z0-9_-]+)?$")


def cases(kind: str, suffix: str) -> list[str]:
    names = sorted(p.name[: -len(suffix)] for p in (GOLDEN / kind).glob("*" + suffix))
    assert names, f"no golden files in {GOLDEN / kind}"
    return names


def args_for(kind: str, case: str) -> dict:
    path = GOLDEN / kind / f"{case}.args.json"
    return json.loads(path.read_text()) if path.exists() else {}


def check_golden_json(path: Path, actual) -> None:
    text = json.dumps(actual, indent=1, ensure_ascii=False) + "\n"
    if UPDATE:
        path.write_text(text, encoding="utf-8")
    assert path.exists(), f"golden file {path} missing; run with UPDATE_GOLDEN=1 and review it"
    assert actual == json.loads(path.read_text(encoding="utf-8")), path.name


def check_golden_bytes(path: Path, actual: bytes) -> None:
    if UPDATE:
        path.write_bytes(actual)
    assert path.exists(), f"golden file {path} missing; run with UPDATE_GOLDEN=1 and review it"
    assert actual == path.read_bytes(), path.name


# --------------------------------------------------------------------------- schema


def schema_nodes(schema: dict, where: str = "$"):
    """Yield (where, node) for every schema node, following only schema positions (so a
    property called ``default`` is a name, not a keyword)."""
    yield where, schema
    for name, sub in (schema.get("properties") or {}).items():
        yield from schema_nodes(sub, f"{where}.properties.{name}")
    if isinstance(schema.get("items"), dict):
        yield from schema_nodes(schema["items"], f"{where}.items")
    for i, sub in enumerate(schema.get("anyOf") or ()):
        yield from schema_nodes(sub, f"{where}.anyOf.{i}")


def check_clean(schema: dict, strict: bool = True) -> None:
    """What Gemini accepts (§9.5), node by node."""
    for where, node in schema_nodes(schema):
        assert isinstance(node, dict), where
        bad = set(node) - KEEP if strict else set(node) & DELETE
        assert not bad, f"{where}: {sorted(bad)}"
        if "type" in node:
            assert isinstance(node["type"], str) and node["type"] != "null", where
        if "enum" in node:
            assert node["enum"] and all(isinstance(v, str) for v in node["enum"]), where
        if "format" in node:
            assert node["format"] in {"int32", "int64", "float", "double", "enum", "date-time"}, where
        if "required" in node:
            assert node["required"] and set(node["required"]) <= set(node.get("properties") or {}), where
        for key in ("properties", "anyOf"):
            assert node.get(key, True), f"{where}.{key} is empty"


@pytest.mark.parametrize("case", cases("schema", ".in.json"))
def test_schema_golden(case):
    schema = json.loads((GOLDEN / "schema" / f"{case}.in.json").read_text())
    before = copy.deepcopy(schema)
    cleaned = clean_schema(schema)
    assert schema == before, "the input schema was mutated"
    check_clean(cleaned)
    assert clean_schema(cleaned) == cleaned, "cleaning is idempotent"
    check_golden_json(GOLDEN / "schema" / f"{case}.out.json", cleaned)


# --------------------------------------------------------------------------- request


def check_gemini_body(body: dict, names: FunctionNames, strict: bool = True) -> None:
    """Structural rules of a GenerateContent body (§9.1) the translator must keep."""
    assert set(body) <= {"systemInstruction", "contents", "tools", "toolConfig", "generationConfig"}
    for part in body.get("systemInstruction", {"parts": [{"text": "x"}]})["parts"]:
        assert list(part) == ["text"] and part["text"]
    declared = set()
    for tool in body.get("tools", []):
        for declaration in tool["functionDeclarations"]:
            assert valid_function_name(declaration["name"]) == declaration["name"]
            assert declaration["name"] not in declared
            declared.add(declaration["name"])
            if "parameters" in declaration:
                check_clean(declaration["parameters"], strict)
                assert declaration["parameters"].get("properties") or declaration["parameters"].get("anyOf")
    calls_per_turn = []
    for content in body["contents"]:
        assert content["role"] in ("user", "model") and content["parts"]
        calls = 0
        for part in content["parts"]:
            data = set(part) - {"thoughtSignature"}
            assert len(data) == 1 and data <= {"text", "inlineData", "functionCall", "functionResponse"}, part
            if "thoughtSignature" in part:
                assert "functionCall" in part and part["thoughtSignature"]
            if "text" in part:
                assert part["text"]
            if "functionCall" in part:
                assert content["role"] == "model"
                assert set(part["functionCall"]) == {"name", "args"}
                assert isinstance(part["functionCall"]["args"], dict)
                assert valid_function_name(part["functionCall"]["name"]) == part["functionCall"]["name"]
                calls += 1
            if "functionResponse" in part:
                assert content["role"] == "user"
                response = part["functionResponse"]
                assert set(response) == {"name", "response"}, "never an id (§9.1)"
                assert list(response["response"]) in (["content"], ["error"])
                assert isinstance(next(iter(response["response"].values())), str)
            if "inlineData" in part:
                assert set(part["inlineData"]) == {"mimeType", "data"}
        calls_per_turn.append(calls)
    config = body["generationConfig"]
    assert isinstance(config["maxOutputTokens"], int) and config["maxOutputTokens"] > 0
    allowed = body.get("toolConfig", {}).get("functionCallingConfig", {}).get("allowedFunctionNames", [])
    assert set(allowed) <= declared
    assert names is not None


@pytest.mark.parametrize("case", cases("request", ".in.json"))
def test_request_golden(case):
    spec = json.loads((GOLDEN / "request" / f"{case}.in.json").read_text())
    body = spec["body"]
    before = copy.deepcopy(body)
    profile = gemini_profile_for(spec["profile"], spec.get("overrides"))
    result = gemini_from_anthropic(body, profile=profile)
    assert body == before, "the client's body was mutated"
    check_gemini_body(result.body, result.names, profile.strict_schema)
    got = {"body": result.body, "renamed": result.names.renamed(), "dropped": list(result.dropped)}
    check_golden_json(GOLDEN / "request" / f"{case}.out.json", got)


def claude_code_cases() -> list:
    found = []
    for path in sorted(CLAUDE_CODE_FIXTURES.glob("*/*.jsonl")):
        for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines()):
            record = json.loads(line)
            if record["method"] == "POST" and record["path"].split("?")[0] == "/v1/messages":
                case_id = f"{path.parent.name}__{path.stem}__{line_no}"
                found.append(pytest.param(record["body"], id=case_id))
    return found


CLAUDE_CODE = claude_code_cases()
GOLDEN_CLAUDE_CODE = ("2.1.332__no_toolsearch__0", "2.1.332__tools__1")
needs_fixtures = pytest.mark.skipif(not CLAUDE_CODE, reason=f"no fixtures at {CLAUDE_CODE_FIXTURES}")
SAP_GEMINI = "gemini-2.5-pro"


def every_key(node) -> set:
    if isinstance(node, dict):
        return set(node).union(*(every_key(v) for v in node.values()))
    if isinstance(node, list):
        return set().union(*(every_key(v) for v in node))
    return set()


@needs_fixtures
@pytest.mark.parametrize("body", CLAUDE_CODE)
def test_claude_code_requests(body, request):
    case_id = request.node.callspec.id
    sanitized = sanitize_bedrock(body, betas=(), profile=PIVOT_PROFILE).body
    before = copy.deepcopy(sanitized)
    result = gemini_from_anthropic(sanitized, profile=gemini_profile_for(SAP_GEMINI))
    assert sanitized == before
    check_gemini_body(result.body, result.names)
    declarations = [d for t in result.body.get("tools", []) for d in t["functionDeclarations"]]
    sent_schema_keys = every_key([t.get("input_schema") for t in sanitized.get("tools", [])])
    if any(t.get("type") in (None, "custom") for t in sanitized.get("tools", [])):
        assert declarations
        assert "additionalProperties" in sent_schema_keys, "the fixture exercises cleaning"
    assert not every_key(declarations) & DELETE, "a deleted keyword survived somewhere"
    assert "format" not in every_key(declarations) or all(
        node.get("format") in {"int32", "int64", "float", "double", "enum", "date-time"}
        for d in declarations if "parameters" in d for _, node in schema_nodes(d["parameters"]))
    if case_id in GOLDEN_CLAUDE_CODE:
        got = {"body": result.body, "renamed": result.names.renamed(), "dropped": list(result.dropped)}
        check_golden_json(GOLDEN / "request" / f"claude_code__{case_id}.out.json", got)


@needs_fixtures
def test_claude_code_golden_cases_exist_and_cover_uri_and_all_of():
    ids = {p.id for p in CLAUDE_CODE}
    assert set(GOLDEN_CLAUDE_CODE) <= ids
    body = next(p.values[0] for p in CLAUDE_CODE if p.id == GOLDEN_CLAUDE_CODE[0])
    raw = json.dumps(body.get("tools"))
    assert '"format": "uri"' in raw and '"allOf"' in raw and "$schema" in raw
    out = json.loads((GOLDEN / "request" / f"claude_code__{GOLDEN_CLAUDE_CODE[0]}.out.json").read_text())
    fetch = next(d for d in out["body"]["tools"][0]["functionDeclarations"] if d["name"] == "WebFetch")
    assert fetch["parameters"]["properties"]["url"] == {
        "description": "The URL to fetch content from (format: uri)", "type": "string"}


# --------------------------------------------------------------------------- response


def names_from(args: dict):
    return FunctionNames(args["tools"]) if "tools" in args else None


@pytest.mark.parametrize("case", cases("response", ".in.json"))
def test_response_golden(case):
    resp = json.loads((GOLDEN / "response" / f"{case}.in.json").read_text())
    before = copy.deepcopy(resp)
    args = args_for("response", case)
    message = message_from_gemini(resp, model=MODEL, names=names_from(args),
                                  message_id=args.get("message_id"))
    assert resp == before
    for block in message["content"]:
        if block["type"] == "tool_use":
            assert TOOL_ID_RE.match(block["id"])
        if block["type"] == "text":
            assert block["text"]
    check_golden_json(GOLDEN / "response" / f"{case}.out.json", message)


# --------------------------------------------------------------------------- stream


def render(events: list[str]) -> bytes:
    """The adapter's events as SAP AI Core's Bedrock SSE would carry them."""
    return b"".join(b"data: " + e.encode("utf-8") + b"\n\n" for e in events)


def adapter_for(args: dict) -> GeminiToAnthropic:
    return GeminiToAnthropic(MODEL, MESSAGE_ID, names_from(args))


def adapt_sse(pieces, args) -> tuple[list[str], GeminiToAnthropic]:
    """The relay pipeline: bytes -> SSEDecoder -> adapter (-> finish at EOF)."""
    decoder = SSEDecoder()
    adapter = adapter_for(args)
    out: list[str] = []
    for piece in pieces:
        for event in decoder.feed(piece):
            out += adapter.feed(event.data)
    for event in decoder.flush():
        out += adapter.feed(event.data)
    return out + adapter.finish(), adapter


def adapt_array(pieces, args) -> tuple[list[str], GeminiToAnthropic]:
    splitter = JsonArrayStreamSplitter()
    adapter = adapter_for(args)
    out: list[str] = []
    for piece in pieces:
        for text in splitter.feed(piece):
            out += adapter.feed(text)
    for text in splitter.flush():
        out += adapter.feed(text)
    return out + adapter.finish(), adapter


def splits(raw: bytes):
    for cut in range(len(raw) + 1):
        yield f"split at byte {cut}", [raw[:cut], raw[cut:]]
    yield "one byte at a time", [raw[i:i + 1] for i in range(len(raw))]


STREAM_CASES = [(c, ".in.sse", adapt_sse) for c in cases("stream", ".in.sse")] + \
               [(c, ".in.json", adapt_array) for c in cases("stream", ".in.json")]
STREAM_IDS = [c for c, _, _ in STREAM_CASES]


def stream_output(case, suffix, adapt) -> tuple[list[str], GeminiToAnthropic]:
    raw = (GOLDEN / "stream" / f"{case}{suffix}").read_bytes()
    return adapt([raw], args_for("stream", case))


@pytest.mark.parametrize("case, suffix, adapt", STREAM_CASES, ids=STREAM_IDS)
def test_stream_golden_split_at_every_byte_offset(case, suffix, adapt):
    raw = (GOLDEN / "stream" / f"{case}{suffix}").read_bytes()
    args = args_for("stream", case)
    events, _ = adapt([raw], args)
    check_golden_bytes(GOLDEN / "stream" / f"{case}.out.sse", render(events))
    for label, pieces in splits(raw):
        assert adapt(pieces, args)[0] == events, label


def check_bedrock_events(events: list[str]) -> None:
    """The adapter's own output: the Bedrock stream shape of sap-ai-core.md §6.3."""
    objs = [json.loads(e) for e in events]
    kinds = [o["type"] for o in objs]
    assert kinds.count("error") <= 1 and ("error" not in kinds or kinds[-1] == "error")
    if kinds[:1] == ["error"]:
        return
    assert kinds[0] == "message_start" and kinds.count("message_start") == 1
    index, open_block, tool_json = 0, None, ""
    for obj in objs[1:]:
        kind = obj["type"]
        if kind == "content_block_start":
            assert open_block is None and obj["index"] == index
            open_block = obj["content_block"]["type"]
            if open_block == "tool_use":
                assert TOOL_ID_RE.match(obj["content_block"]["id"]) and obj["content_block"]["input"] == {}
                tool_json = ""
        elif kind == "content_block_delta":
            assert obj["index"] == index and open_block is not None
            if obj["delta"]["type"] == "input_json_delta":
                tool_json += obj["delta"]["partial_json"]
        elif kind == "content_block_stop":
            assert obj["index"] == index
            if open_block == "tool_use":
                assert isinstance(json.loads(tool_json), dict)
            open_block = None
            index += 1
        elif kind == "message_delta":
            assert open_block is None and obj["delta"]["stop_reason"]
            assert all(type(obj["usage"][k]) is int for k in (
                "input_tokens", "output_tokens", "cache_read_input_tokens", "cache_creation_input_tokens"))
        elif kind == "message_stop":
            assert kinds[-2:] == ["message_delta", "message_stop"]
            assert set(obj["amazon-bedrock-invocationMetrics"]) == {
                "inputTokenCount", "outputTokenCount", "cacheReadInputTokenCount", "cacheWriteInputTokenCount"}


def through_bedrock(events: list[str]) -> tuple[bytes, BedrockToAnthropicStream]:
    translator = BedrockToAnthropicStream(model=MODEL)
    raw = b"".join(translator.feed(e) for e in events)
    return raw + translator.finish(), translator  # finish() is b"" once message_stop was relayed


def through_chat(events: list[str]) -> tuple[bytes, ChatCompletionStream]:
    translator = ChatCompletionStream(model=MODEL, completion_id=ID, created=CREATED, include_usage=True)
    raw = b"".join(translator.feed(e) for e in events)
    return raw + translator.finish(), translator


FAILING = {"error_event": "overloaded_error", "error_first": "api_error", "malformed": "api_error",
           "eof_without_finish": "overloaded_error"}


@pytest.mark.parametrize("case, suffix, adapt", STREAM_CASES, ids=STREAM_IDS)
def test_stream_grammar_for_both_client_translators(case, suffix, adapt):
    events, adapter = stream_output(case, suffix, adapt)
    check_bedrock_events(events)
    anthropic_raw, bedrock = through_bedrock(events)
    client_events = validate_anthropic_stream(anthropic_raw, model=MODEL)
    chat_raw, chat = through_chat(events)
    summary = check_grammar(chat_raw, include_usage=True)
    if case in FAILING:
        assert not adapter.done and bedrock.failed and chat.failed and "error" in summary
        assert client_events[-1][1]["error"]["type"] == FAILING[case]
        return
    assert adapter.done and not adapter.failed and bedrock.done and chat.done
    assert bedrock.usage == adapter.usage
    assert summary["usage"]["completion_tokens"] == adapter.usage["output_tokens"]
    assert summary["usage"]["prompt_tokens_details"]["cached_tokens"] == adapter.usage["cache_read_input_tokens"]


def merged_response(case: str, suffix: str) -> dict:
    """The stream's chunks as one GenerateContentResponse (what :generateContent returns)."""
    raw = (GOLDEN / "stream" / f"{case}{suffix}").read_bytes()
    if suffix == ".in.sse":
        decoder = SSEDecoder()
        texts = [e.data for e in decoder.feed(raw) + decoder.flush()]
    else:
        splitter = JsonArrayStreamSplitter()
        texts = splitter.feed(raw) + splitter.flush()
    chunks = []
    for text in texts:
        try:
            value = json.loads(text)
        except ValueError:  # a piece of a JSON array: "[{..}", ",{..}", "]"
            text = text.strip().lstrip("[,").rstrip("],")
            value = json.loads(text) if text else []
        chunks += value if isinstance(value, list) else [value]
    parts, finish, seen, merged = [], None, False, {}
    for chunk in chunks:
        for key in ("usageMetadata", "promptFeedback", "responseId"):
            if key in chunk:
                merged[key] = chunk[key]
        if chunk.get("candidates"):
            seen = True
            candidate = chunk["candidates"][0]
            parts += candidate.get("content", {}).get("parts", [])
            finish = candidate.get("finishReason") or finish
    if seen:
        merged["candidates"] = [{"content": {"role": "model", "parts": parts}, "finishReason": finish}]
    return merged


def accumulate(events: list[str]) -> dict:
    """The Anthropic message a Bedrock-style event list describes."""
    message, blocks = {}, []
    for obj in map(json.loads, events):
        kind = obj["type"]
        if kind == "message_start":
            message = dict(obj["message"], content=blocks)
        elif kind == "content_block_start":
            blocks.append(dict(obj["content_block"], partial=""))
        elif kind == "content_block_delta":
            block, delta = blocks[obj["index"]], obj["delta"]
            for field, key in (("text", "text"), ("thinking", "thinking"), ("signature", "signature"),
                               ("partial_json", "partial")):
                if field in delta:
                    block[key] = block.get(key, "") + delta[field]
        elif kind == "message_delta":
            message["stop_reason"] = obj["delta"]["stop_reason"]
            message["stop_sequence"] = obj["delta"]["stop_sequence"]
            message["usage"] = obj["usage"]
    for block in blocks:
        partial = block.pop("partial")
        if block["type"] == "tool_use":
            block["input"] = json.loads(partial)
    return message


FINISHED = [c for c in STREAM_CASES if c[0] not in FAILING]


@pytest.mark.parametrize("case, suffix, adapt", FINISHED, ids=[c[0] for c in FINISHED])
def test_stream_accumulates_to_the_non_streaming_answer(case, suffix, adapt):
    events, _ = stream_output(case, suffix, adapt)
    args = args_for("stream", case)
    whole = message_from_gemini(merged_response(case, suffix), model=MODEL, names=names_from(args),
                                message_id=MESSAGE_ID)
    assert accumulate(events) == whole


def test_every_stream_case_has_its_golden_and_the_required_shapes():
    for case, _, _ in STREAM_CASES:
        assert (GOLDEN / "stream" / f"{case}.out.sse").exists(), case
    required = {"text", "thoughts_then_text", "function_call_signature", "two_function_calls",
                "max_tokens", "safety", "usage_only_last", "error_event"}
    assert required <= set(STREAM_IDS)
