"""Upstream answers -> client errors, in both dialects, with secrets redacted."""

from __future__ import annotations

import json

import pytest

from app import errors


@pytest.mark.parametrize("status,body,headers,cls,client_status", [
    (429, b'{"message":"Too many tokens, please wait"}', {"Retry-After": "8"},
     errors.RateLimited, 429),
    (400, b'{"message":"context_management: Extra inputs are not permitted"}', {},
     errors.InvalidRequest, 400),
    (400, b'{"message":"Input is too long for requested model."}', {}, errors.PromptTooLong, 400),
    (401, b'{"message":"Jwt is expired"}', {}, errors.UpstreamRefused, 500),
    (403, b'{}', {}, errors.UpstreamRefused, 500),
    (404, b'not found', {}, errors.NotFound, 404),
    (503, b'{"message":"ServiceUnavailableException"}', {}, errors.Overloaded, 529),
    (500, b'{"Message":"InternalServerException"}', {}, errors.UpstreamFailure, 500),
    (424, b'{"error":{"code":"x","message":"ModelErrorException"}}', {}, errors.UpstreamFailure, 500),
    (504, b'', {}, errors.GatewayTimeout, 504),
])
def test_classification(status, body, headers, cls, client_status):
    error = errors.from_upstream(status, body, headers, model="m")
    assert type(error) is cls
    assert error.status == client_status


def test_retry_after_defaults_and_caps():
    assert errors.from_upstream(429, b"{}", {}, model="m").retry_after == 5
    assert errors.from_upstream(429, b"{}", {"retry-after": "999"}, model="m").retry_after == 60
    assert errors.from_upstream(429, b"{}", {"retry-after": "soon"}, model="m").retry_after == 5


def test_prompt_too_long_carries_claude_code_token():
    error = errors.from_upstream(400, b'{"message":"Input is too long for requested model."}',
                                 {}, model="m")
    assert error.message.startswith("capability_rejected: prompt_too_long; prompt is too long")
    counted = error.counted(250000, 200000)
    assert isinstance(counted, errors.PromptTooLong)
    assert "prompt is too long: 250000 tokens > 200000 maximum." in counted.message
    assert counted.message.endswith("Upstream said: Input is too long for requested model.")
    # the upstream said "over": an estimate below the window is raised to just above it
    assert "200001 tokens > 200000 maximum" in error.counted(150000, 200000).message


@pytest.mark.parametrize("message", [
    "tools.0.description: String too long", "messages.0.content.0.text: value too long"])
def test_a_field_too_long_is_an_ordinary_400(message):
    error = errors.from_upstream(400, json.dumps({"message": message}).encode(), {}, model="m")
    assert type(error) is errors.InvalidRequest and error.message == message


@pytest.mark.parametrize("status", [401, 403])
def test_upstream_credential_refusal_is_a_500_the_client_should_not_retry(status):
    error = errors.from_upstream(status, b'{"message":"forbidden"}', {}, model="m")
    assert error.status == 500 and error.anthropic_type == "api_error"
    _body, _status, headers = errors.render(error, errors.ANTHROPIC, "req_1")
    assert headers["x-should-retry"] == "false"


def test_redaction_of_urls_hosts_and_tokens():
    text = ("failed https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com/v2/inference/x "
            "host tenant.authentication.eu10.hana.ondemand.com Bearer abc.def.ghi "
            "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiIxIn0.sig")
    cleaned = errors.redact(text)
    for secret in ("hana.ondemand.com", "abc.def.ghi", "eyJhbGciOiJSUzI1NiJ9", "https://"):
        assert secret not in cleaned


def test_render_both_dialects():
    error = errors.RateLimited("slow down", retry_after=8)
    body, status, headers = errors.render(error, errors.ANTHROPIC, "req_1")
    assert status == 429 and headers["retry-after"] == "8"
    assert json.loads(body) == {"type": "error", "request_id": "req_1",
                                "error": {"type": "rate_limit_error", "message": "slow down"}}
    body, status, _ = errors.render(errors.Overloaded("busy"), errors.OPENAI, "req_1")
    assert status == 503
    assert json.loads(body)["error"]["type"] == "service_unavailable_error"


@pytest.mark.parametrize("event,cls", [
    ('{"type":"error","error":{"type":"overloaded_error","message":"Overloaded"}}',
     errors.Overloaded),
    ('{"type":"error","message":"ThrottlingException: Too many requests"}', errors.RateLimited),
    ('{"error":{"code":429,"message":"Resource has been exhausted","status":"RESOURCE_EXHAUSTED"}}',
     errors.RateLimited),
    ('{"error":{"code":503,"message":"The model is busy","status":"UNAVAILABLE"}}',
     errors.Overloaded),
    ('{"error":{"code":"rate_limit_exceeded","message":"Rate limit reached"}}', errors.RateLimited),
    ('{"type":"error","error":{"type":"api_error","message":"boom"}}', errors.Overloaded),
])
def test_a_failed_first_event_is_classified_in_every_dialect(event, cls):
    error = errors.failed_start(event, "m", 5)
    assert type(error) is cls
    if cls is errors.RateLimited:
        assert error.retry_after == 5
