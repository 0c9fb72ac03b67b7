"""OpenAI Responses translation, golden files per direction (tests/golden/openai_responses/):

* ``request/<case>.in.json`` (Responses body) -> ``.out.json`` (Anthropic body + flags);
* ``response/<case>.in.json`` (Bedrock ``/invoke`` answer) -> ``.out.json`` (``response``);
* ``stream/<case>.in.sse`` (Bedrock stream recording; most copied from openai_chat/stream)
  -> ``.out.sse`` (Responses SSE), fed through the one SSE decoder split at every byte offset.

``<case>.request.json`` next to a response or stream input is the client's Responses body
(echoed in the answer); without one it is :data:`DEFAULT_REQUEST`. ``UPDATE_GOLDEN=1``
rewrites the expected files; otherwise a missing or different file fails.

Every stream is also checked against the event grammar (sequence numbers, one added/done
per item, deltas of open items only, done texts equal to their deltas, one terminal event),
every event is validated with the ``openai`` SDK's own pydantic types and replayed through
the SDK's stream accumulator, and every complete stream must end with the object the
non-streaming path answers for the same message.
"""

from __future__ import annotations

import copy
import json
import os
from pathlib import Path

import httpx2
import openai
import pydantic
import pytest
from openai.types.responses import Response, ResponseStreamEvent

from app.translate.bedrock_stream import message_from_bedrock
from app.translate.openai.responses_request import translate_responses_request
from app.translate.openai.responses_response import response_from_message
from app.translate.openai.responses_stream import ResponsesStream
from app.wire.sse import SSEDecoder
from tests.unit.test_openai_chat_golden import bedrock_message

GOLDEN = Path(__file__).resolve().parents[1] / "golden" / "openai_responses"
MODEL = "claude-sonnet-4-5"
ID = "resp_golden"
CREATED = 1767225600
DEFAULT_REQUEST = {"model": MODEL, "input": "hi"}
UPDATE = os.environ.get("UPDATE_GOLDEN") == "1"
EVENT = pydantic.TypeAdapter(ResponseStreamEvent)


def cases(kind: str, suffix: str) -> list[str]:
    names = sorted(p.name[: -len(suffix)] for p in (GOLDEN / kind).glob("*" + suffix))
    assert names, f"no golden files in {GOLDEN / kind}"
    return names


def expect(path: Path, got: bytes) -> bytes:
    """The expected bytes; with UPDATE_GOLDEN=1 the file is (re)written from ``got`` first."""
    if UPDATE:
        path.write_bytes(got)
    assert path.exists(), f"missing golden file {path.name} (run with UPDATE_GOLDEN=1)"
    return path.read_bytes()


def as_json(value) -> bytes:
    return (json.dumps(value, indent=2, ensure_ascii=False) + "\n").encode()


def client_request(kind: str, case: str):
    path = GOLDEN / kind / f"{case}.request.json"
    return translate_responses_request(json.loads(path.read_text()) if path.exists()
                                       else DEFAULT_REQUEST)


# --------------------------------------------------------------------------- request


@pytest.mark.parametrize("case", cases("request", ".in.json"))
def test_request_golden(case):
    body = json.loads((GOLDEN / "request" / f"{case}.in.json").read_text())
    before = copy.deepcopy(body)
    result = translate_responses_request(body)
    got = {"body": result.body, "stream": result.stream, "ignored": list(result.ignored),
           "dropped_tools": list(result.dropped_tools), "echo": result.echo}
    expected = expect(GOLDEN / "request" / f"{case}.out.json", as_json(got))
    assert got == json.loads(expected)
    assert body == before, "the client's body was mutated"


# --------------------------------------------------------------------------- response


def respond(upstream: dict, request) -> dict:
    """What the route does with a non-streaming answer."""
    message = message_from_bedrock(upstream, model=MODEL)
    return response_from_message(message, model=MODEL, response_id=ID, created_at=CREATED,
                                 request=request)


@pytest.mark.parametrize("case", cases("response", ".in.json"))
def test_response_golden(case):
    upstream = json.loads((GOLDEN / "response" / f"{case}.in.json").read_text())
    got = respond(upstream, client_request("response", case))
    expected = expect(GOLDEN / "response" / f"{case}.out.json", as_json(got))
    assert got == json.loads(expected)
    parsed = Response.model_validate(got)  # the SDK's own type, validated
    assert parsed.output_text == "".join(
        b["text"] for b in upstream.get("content", []) if b["type"] == "text")


# --------------------------------------------------------------------------- stream


def translate(chunks, request) -> tuple[bytes, ResponsesStream]:
    """The relay pipeline: bytes -> SSEDecoder -> translator -> client bytes."""
    decoder = SSEDecoder()
    translator = ResponsesStream(MODEL, ID, CREATED, request)
    out = []
    for chunk in chunks:
        out += [translator.feed(event.data) for event in decoder.feed(chunk)]
    out += [translator.feed(event.data) for event in decoder.flush()]
    out.append(translator.finish())
    return b"".join(out), translator


@pytest.mark.parametrize("case", cases("stream", ".in.sse"))
def test_stream_golden_split_at_every_byte_offset(case):
    raw = (GOLDEN / "stream" / f"{case}.in.sse").read_bytes()
    request = client_request("stream", case)
    whole, _ = translate([raw], request)
    expected = expect(GOLDEN / "stream" / f"{case}.out.sse", whole)
    for cut in range(len(raw) + 1):
        got, _ = translate([raw[:cut], raw[cut:]], request)
        assert got == expected, f"split at byte {cut}"
    got, _ = translate([raw[i:i + 1] for i in range(len(raw))], request)
    assert got == expected, "one byte at a time"


def parse_events(raw: bytes) -> list:
    """Client view: named frames whose ``event:`` equals the JSON ``type``, or comments."""
    assert raw.endswith(b"\n\n")
    frames = raw.split(b"\n\n")[:-1]
    events = []
    for frame in frames:
        if frame.startswith(b": "):
            assert b"\n" not in frame
            continue
        name, data = frame.split(b"\n")
        assert name.startswith(b"event: ") and data.startswith(b"data: "), frame
        event = json.loads(data[6:])
        assert event["type"] == name[7:].decode()
        events.append(event)
    decoded = [json.loads(e.data) for e in SSEDecoder().feed(raw)]
    assert decoded == events  # what any SSE client reads
    return events


def check_grammar(events: list) -> dict:
    """Assert the Responses event grammar; return the terminal response object."""
    assert [e["sequence_number"] for e in events] == list(range(len(events)))
    for event in events:
        EVENT.validate_python(event)  # the SDK's discriminated union of stream events
    assert events[0]["type"] == "response.created"
    assert events[0]["response"]["status"] == "in_progress"
    terminal = events[-1]
    assert terminal["type"] in ("response.completed", "response.failed")
    assert sum(e["type"] in ("response.completed", "response.failed") for e in events) == 1
    if terminal["type"] == "response.failed":
        assert events[-2]["type"] == "error" and events[-2]["error"]["message"]
        assert events[-2]["message"] == events[-2]["error"]["message"]
        assert terminal["response"]["error"]["code"] in ("server_error", "rate_limit_exceeded")
    else:
        assert events[1]["type"] == "response.in_progress"
        assert "error" not in [e["type"] for e in events]
    items: dict = {}  # output_index -> accumulated state
    finished: list = []
    for event in events[1:-1]:
        kind = event["type"]
        if kind == "response.output_item.added":
            index = event["output_index"]
            assert index == len(items), "output indices are 0, 1, ... in order"
            assert all(s["done"] for s in items.values()), "one item at a time"
            items[index] = {"item": event["item"], "text": "", "parts": 0, "done": False}
            continue
        if kind in ("response.in_progress", "error"):
            continue
        state = items[event["output_index"]]
        assert not state["done"], f"{kind} after its item was done"
        assert event.get("item_id", state["item"]["id"]) == state["item"]["id"]
        if kind in ("response.content_part.added", "response.reasoning_summary_part.added"):
            assert state["parts"] == 0 and event["part"]["text"] == ""
            state["parts"] = 1
        elif kind in ("response.output_text.delta", "response.reasoning_summary_text.delta",
                      "response.function_call_arguments.delta"):
            assert event["delta"], "no empty deltas"
            assert kind.endswith("arguments.delta") or state["parts"] == 1
            state["text"] += event["delta"]
        elif kind in ("response.output_text.done", "response.reasoning_summary_text.done"):
            assert event["text"] == state["text"]
        elif kind == "response.function_call_arguments.done":
            assert event["arguments"] == state["text"]
            assert isinstance(json.loads(state["text"]), dict)
        elif kind in ("response.content_part.done", "response.reasoning_summary_part.done"):
            assert event["part"]["text"] == state["text"]
        elif kind == "response.output_item.done":
            item = event["item"]
            assert item["id"] == state["item"]["id"] and item["type"] == state["item"]["type"]
            assert item.get("status", "completed") == "completed"
            state["done"] = True
            finished.append(item)
        else:
            raise AssertionError(f"unexpected event {kind}")
    response = terminal["response"]
    assert response["id"] == ID and response["model"] == MODEL
    assert response["output"] == finished
    if terminal["type"] == "response.completed":
        assert all(s["done"] for s in items.values())
        assert response["usage"]["total_tokens"] == (response["usage"]["input_tokens"]
                                                     + response["usage"]["output_tokens"])
    return response


def sdk_client(answer: bytes, content_type: str = "text/event-stream") -> openai.OpenAI:
    """The official SDK, strict, with every request answered by ``answer`` (no network)."""
    def handler(request: httpx2.Request) -> httpx2.Response:
        return httpx2.Response(200, headers={"content-type": content_type}, content=answer)

    return openai.OpenAI(api_key="sk-test", base_url="http://gateway.test/v1", max_retries=0,
                         http_client=httpx2.Client(transport=httpx2.MockTransport(handler)),
                         _strict_response_validation=True)


def with_parsed_arguments(response: dict) -> dict:
    output = [{**item, "arguments": json.loads(item["arguments"])}
              if item["type"] == "function_call" else item for item in response["output"]]
    return {**response, "output": output}


@pytest.mark.parametrize("case", cases("stream", ".in.sse"))
def test_stream_grammar_and_same_answer_as_non_streaming(case):
    raw = (GOLDEN / "stream" / f"{case}.in.sse").read_bytes()
    request = client_request("stream", case)
    got, translator = translate([raw], request)
    response = check_grammar(parse_events(got))
    if response["status"] == "failed":
        assert translator.failed and not translator.done
        return
    assert translator.done and not translator.failed
    whole = respond(bedrock_message(raw), request)
    assert with_parsed_arguments(response) == with_parsed_arguments(whole)
    with sdk_client(got).responses.stream(model=MODEL, input="hi") as stream:
        final = stream.get_final_response()  # the SDK's accumulator over our events
    assert without_parsed(final.model_dump(mode="json", exclude_unset=True)) == \
        Response.model_validate(response).model_dump(mode="json", exclude_unset=True)


def without_parsed(value):
    """The SDK's ``ParsedResponse`` adds ``parsed`` / ``parsed_arguments`` (structured
    outputs) to texts and calls."""
    if isinstance(value, dict):
        return {k: without_parsed(v) for k, v in value.items()
                if k not in ("parsed", "parsed_arguments")}
    if isinstance(value, list):
        return [without_parsed(v) for v in value]
    return value
