"""Property test: hostile bodies and headers never produce a 5xx, a traceback or a dead app."""

from __future__ import annotations

import json

import pytest
import responses
from hypothesis import HealthCheck, given, settings, strategies as st

from tests.http_fakes import bedrock_message, deployment_url

JSON_LEAF = st.one_of(st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False),
                      st.text(max_size=20))
JSON = st.recursive(JSON_LEAF, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.text(max_size=10), inner, max_size=4)),
    max_leaves=30)
ROLE = st.sampled_from(["user", "assistant", "system", "tool", "", "USER"])
BLOCK = st.one_of(
    st.fixed_dictionaries({"type": st.sampled_from(
        ["text", "image", "tool_use", "tool_result", "thinking", "tool_reference", "document",
         "redacted_thinking", "future_block", ""])}, optional={
        "text": st.one_of(st.text(max_size=30), JSON), "id": JSON, "tool_use_id": JSON,
        "content": JSON, "input": JSON, "source": JSON, "cache_control": JSON,
        "signature": JSON, "thinking": JSON}),
    JSON)
MESSAGE = st.fixed_dictionaries({"role": ROLE}, optional={
    "content": st.one_of(st.text(max_size=40), st.lists(BLOCK, max_size=4), JSON)})
BODY = st.fixed_dictionaries({}, optional={
    "model": st.one_of(st.sampled_from(["claude-sonnet-4-5", "anthropic--claude-4.5-haiku",
                                        "../../v2/lm/deployments", "claude-opus-5-5[1m]"]),
                       st.text(max_size=30), JSON),
    "max_tokens": st.one_of(st.integers(-5, 10**9), JSON),
    "messages": st.one_of(st.lists(MESSAGE, max_size=5), JSON),
    "system": st.one_of(st.text(max_size=30), st.lists(BLOCK, max_size=3), JSON),
    "tools": st.one_of(st.lists(JSON, max_size=3), JSON),
    "thinking": JSON, "tool_choice": JSON, "stream": JSON, "metadata": JSON,
    "cache_control": JSON, "context_management": JSON, "output_config": JSON,
    "temperature": JSON, "top_k": JSON, "stop_sequences": JSON})
CACHE = st.fixed_dictionaries({"type": st.just("ephemeral")}, optional={
    "ttl": st.sampled_from(["5m", "1h", "2h"]), "scope": JSON})
VALID_BLOCK = st.one_of(
    st.builds(lambda t: {"type": "text", "text": t}, st.text(max_size=30)),
    st.builds(lambda t, cc: {"type": "text", "text": t, "cache_control": cc},
              st.text(max_size=10), CACHE),
    st.builds(lambda i, n, inp: {"type": "tool_use", "id": i, "name": n, "input": inp},
              st.text(max_size=8), st.text(max_size=8),
              st.dictionaries(st.text(max_size=5), JSON_LEAF, max_size=3)),
    st.builds(lambda i, c: {"type": "tool_result", "tool_use_id": i, "content": c},
              st.text(max_size=8), st.one_of(st.text(max_size=20), st.lists(st.builds(
                  lambda n: {"type": "tool_reference", "tool_name": n}, st.text(max_size=8)),
                  max_size=2))),
    st.builds(lambda t, sig: {"type": "thinking", "thinking": t, "signature": sig},
              st.text(max_size=10), st.text(max_size=10)))
# Mostly valid requests with hostile parts, so the sanitizer and forwarding get exercised.
VALIDISH = st.fixed_dictionaries({
    "model": st.sampled_from(["claude-sonnet-4-5", "claude-haiku-4-5-20251001"]),
    "max_tokens": st.integers(1, 200_000),
    "messages": st.lists(st.fixed_dictionaries({
        "role": st.sampled_from(["user", "assistant", "system"]),
        "content": st.one_of(st.text(max_size=40), st.lists(
            st.one_of(VALID_BLOCK, VALID_BLOCK, VALID_BLOCK, BLOCK), max_size=4))}),
        min_size=1, max_size=5),
    "stream": st.booleans()}, optional={
    "system": st.one_of(st.text(max_size=30), st.lists(st.builds(
        lambda t: {"type": "text", "text": t}, st.text(max_size=20)), max_size=3)),
    "tools": st.lists(st.one_of(st.fixed_dictionaries(
        {"name": st.text(max_size=10), "input_schema": JSON},
        optional={"type": st.sampled_from(["custom", "web_search_20250305", "bash_20250124"]),
                  "defer_loading": JSON, "cache_control": CACHE})), max_size=3),
    "thinking": st.one_of(st.fixed_dictionaries(
        {"type": st.sampled_from(["enabled", "adaptive", "disabled"])},
        optional={"budget_tokens": st.integers(-10, 10**6), "display": JSON})),
    "tool_choice": st.fixed_dictionaries({"type": st.sampled_from(["auto", "any", "tool", "x"])},
                                         optional={"name": st.text(max_size=8)}),
    "temperature": st.floats(0, 2), "top_p": st.floats(0, 1), "top_k": st.integers(0, 500)})
forwarded = {"count": 0}
HEADER_VALUE = st.text(alphabet=st.characters(min_codepoint=32, max_codepoint=0x2FFF),
                       max_size=40)


def check_error_shape(resp) -> None:
    assert resp.status_code < 500, resp.get_data()[:500]
    if resp.status_code >= 400:
        body = resp.get_json()
        assert body["type"] == "error"
        assert isinstance(body["error"]["type"], str) and isinstance(body["error"]["message"], str)
        assert "Traceback" not in body["error"]["message"]


@pytest.fixture
def answering_upstream(upstream):
    for dep in ("d-sonnet", "d-haiku"):
        upstream.add(responses.POST, deployment_url(dep) + "/invoke", json=bedrock_message())
        upstream.add(responses.POST, deployment_url(dep) + "/invoke-with-response-stream",
                     body="data: {\"type\":\"message_stop\"}\n\n")
    return upstream


FUZZ = settings(max_examples=150, deadline=None, derandomize=True,
                suppress_health_check=[HealthCheck.function_scoped_fixture,
                                       HealthCheck.too_slow])


@FUZZ
@given(body=BODY, path=st.sampled_from(["/v1/messages", "/v1/messages/count_tokens"]))
def test_generated_bodies(client, answering_upstream, auth_headers, body, path):
    resp = client.post(path, data=json.dumps(body), headers={
        **auth_headers, "Content-Type": "application/json"})
    check_error_shape(resp)


@FUZZ
@given(body=VALIDISH)
def test_generated_plausible_requests(client, answering_upstream, auth_headers, body):
    before = len(answering_upstream.calls)
    resp = client.post("/v1/messages", json=body, headers=auth_headers)
    check_error_shape(resp)
    if resp.status_code == 200:
        resp.get_data()
    forwarded["count"] += len(answering_upstream.calls) > before


def test_plausible_requests_were_forwarded():
    assert forwarded["count"] >= 20  # the property above really exercised the upstream path


@FUZZ
@given(raw=st.binary(max_size=300), content_type=st.sampled_from(
    ["application/json", "text/plain", "", "application/json; charset=latin-1",
     "multipart/form-data"]))
def test_generated_bytes(client, answering_upstream, auth_headers, raw, content_type):
    resp = client.post("/v1/messages", data=raw,
                       headers={**auth_headers, "Content-Type": content_type})
    check_error_shape(resp)
    assert resp.status_code != 200 or raw.strip().startswith(b"{")


@FUZZ
@given(key=HEADER_VALUE, beta=HEADER_VALUE, session=HEADER_VALUE)
def test_generated_headers(client, answering_upstream, key, beta, session):
    resp = client.post("/v1/messages", json={"model": "claude-sonnet-4-5", "max_tokens": 5,
                                             "messages": [{"role": "user", "content": "hi"}]},
                       headers={"x-api-key": key, "anthropic-beta": beta,
                                "X-Claude-Code-Session-Id": session})
    check_error_shape(resp)
    assert resp.status_code == 401  # none of these is the configured key
    for value in resp.headers.values():
        assert "\n" not in value and "\r" not in value


def test_header_injection_in_model_name_does_not_reach_headers(client, answering_upstream,
                                                               auth_headers):
    resp = client.post("/v1/messages", headers=auth_headers, json={
        "model": "claude-sonnet-4-5\r\nX-Injected: 1", "max_tokens": 5,
        "messages": [{"role": "user", "content": "hi"}]})
    check_error_shape(resp)
    assert "X-Injected" not in resp.headers
