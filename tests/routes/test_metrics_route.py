"""GET /metrics (who may scrape, what it shows) and the request bookkeeping around every
route: request ids, the in-flight gauge, JSON access lines with the client's address."""

from __future__ import annotations

import hashlib
import ipaddress
import json
import logging
import time

import pytest
import responses
from prometheus_client.parser import text_string_to_metric_families
from werkzeug.test import EnvironBuilder

from app import create_app, runtime
from app.log import configure_logging
from tests.http_fakes import (CLIENT_KEY, bedrock_message, bedrock_stream, deployment_url,
                              make_settings, simple_body)

SONNET = "anthropic--claude-4.5-sonnet"
SCRAPE_TOKEN = "scrape-token-0987"


def samples(text: str) -> dict[tuple, float]:
    out = {}
    for family in text_string_to_metric_families(text):
        for s in family.samples:
            out[(s.name, tuple(sorted(s.labels.items())))] = s.value
    return out


def sample(text: str, name: str, **labels) -> float:
    return samples(text).get((name, tuple(sorted(labels.items()))), 0.0)


@pytest.fixture
def guarded_client(tmp_path, upstream):
    """An app whose /metrics wants a bearer token and allows 10.0.0.0/8 besides loopback."""
    settings = make_settings(
        tmp_path, metrics_token_digest=hashlib.sha256(SCRAPE_TOKEN.encode()).digest(),
        metrics_allow_from=(ipaddress.ip_network("127.0.0.1/32"),
                            ipaddress.ip_network("10.0.0.0/8")))
    app = create_app(settings)
    yield app.test_client()
    runtime.install(None)


def test_loopback_scrape_needs_no_client_key(client):
    resp = client.get("/metrics")
    assert resp.status_code == 200
    assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
    assert "gateway_streams_in_flight" in resp.get_data(as_text=True)


def test_other_peers_are_refused_by_default(client):
    resp = client.get("/metrics", environ_base={"REMOTE_ADDR": "10.1.2.3"})
    assert resp.status_code == 403
    assert resp.get_json()["error"]["type"] == "permission_error"
    assert "gateway_" not in resp.get_data(as_text=True)


def test_token_and_networks_when_configured(guarded_client):
    remote = {"REMOTE_ADDR": "10.9.8.7"}
    assert guarded_client.get("/metrics", environ_base=remote).status_code == 403
    wrong = {"Authorization": "Bearer not-the-token"}
    assert guarded_client.get("/metrics", headers=wrong, environ_base=remote).status_code == 403
    good = {"Authorization": "Bearer " + SCRAPE_TOKEN}
    assert guarded_client.get("/metrics", headers=good, environ_base=remote).status_code == 200
    assert guarded_client.get("/metrics", headers=good).status_code == 200  # 127.0.0.1
    outside = {"REMOTE_ADDR": "192.168.1.5"}
    assert guarded_client.get("/metrics", headers=good, environ_base=outside).status_code == 403
    # a client key is no metrics token
    as_client = {"Authorization": "Bearer " + CLIENT_KEY}
    assert guarded_client.get("/metrics", headers=as_client).status_code == 403


def test_a_proxy_the_gateway_does_not_resolve_hides_the_client(tmp_path, upstream):
    """nginx on the same host: the peer is 127.0.0.1 whoever the client is."""
    via_nginx = {"X-Forwarded-For": "203.0.113.9"}
    token = {"Authorization": "Bearer " + SCRAPE_TOKEN}
    digest = hashlib.sha256(SCRAPE_TOKEN.encode()).digest()
    try:
        plain = create_app(make_settings(tmp_path)).test_client()
        assert plain.get("/metrics", headers=via_nginx).status_code == 403
        assert plain.get("/metrics").status_code == 200  # direct, no proxy
        guarded = create_app(make_settings(tmp_path, metrics_token_digest=digest)).test_client()
        assert guarded.get("/metrics", headers={**via_nginx, **token}).status_code == 200
        trusting = create_app(make_settings(tmp_path, trusted_proxies=("127.0.0.1/32",)))
        # resolved by trusted_proxies: the client's own address decides
        assert trusting.test_client().get("/metrics", headers=via_nginx).status_code == 403
        assert trusting.test_client().get(
            "/metrics", headers={"X-Forwarded-For": "10.0.0.1"}).status_code == 403
    finally:
        runtime.install(None)


def test_requests_tokens_and_in_flight_through_the_routes(client, upstream, auth_headers):
    upstream.add(responses.POST, deployment_url("d-sonnet") + "/invoke", json=bedrock_message())
    upstream.add(responses.POST, deployment_url("d-sonnet") + "/invoke-with-response-stream",
                 body=bedrock_stream())
    before = client.get("/metrics").get_data(as_text=True)
    assert client.post("/v1/messages", json=simple_body(), headers=auth_headers).status_code == 200
    streamed = client.post("/v1/messages", json=simple_body(stream=True), headers=auth_headers,
                           buffered=False)
    during = client.get("/metrics").get_data(as_text=True)
    assert b"message_stop" in streamed.get_data()
    streamed.close()
    assert client.post("/v1/messages", json=simple_body(model="nope"),
                       headers=auth_headers).status_code == 404
    after = client.get("/metrics").get_data(as_text=True)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    ok = {"route": "/v1/messages", "model": SONNET, "status": "200"}
    assert delta("gateway_requests_total", **ok) == 2
    assert delta("gateway_requests_total", route="/v1/messages", model="-", status="404") == 1
    assert sample(during, "gateway_streams_in_flight") == 1
    assert sample(after, "gateway_streams_in_flight") == 0
    tokens = {"model": SONNET, "client": "team-a"}
    assert delta("gateway_tokens_total", kind="input", **tokens) == 24
    assert delta("gateway_tokens_total", kind="cache_read", **tokens) == 60
    assert delta("gateway_tokens_total", kind="output", **tokens) == 4 + 5
    timing = {"route": "/v1/messages", "model": SONNET}
    assert delta("gateway_time_to_first_event_seconds_count", **timing) == 2
    assert delta("gateway_request_duration_seconds_count", **timing) == 2
    assert delta("gateway_requests_total", route="/metrics", model="-", status="200") == 2
    assert CLIENT_KEY not in after


def test_upstream_latency_and_gateway_overhead_are_measured_for_real_calls(client, upstream,
                                                                           auth_headers):
    """SAP AI Core's part (sending the call to its answer or first event) is timed apart from
    the gateway's: an upstream that takes 80 ms shows up as upstream latency, not overhead."""
    def slow(answer: str):
        def reply(request):
            time.sleep(0.08)
            return 200, {}, answer
        return reply

    upstream.add_callback(responses.POST, deployment_url("d-sonnet") + "/invoke",
                          callback=slow(json.dumps(bedrock_message())))
    upstream.add_callback(responses.POST,
                          deployment_url("d-sonnet") + "/invoke-with-response-stream",
                          callback=slow(bedrock_stream()))
    before = client.get("/metrics").get_data(as_text=True)
    assert client.post("/v1/messages", json=simple_body(), headers=auth_headers).status_code == 200
    streamed = client.post("/v1/messages", json=simple_body(stream=True), headers=auth_headers)
    assert b"message_stop" in streamed.get_data()
    after = client.get("/metrics").get_data(as_text=True)

    def delta(name, **labels):
        return sample(after, name, **labels) - sample(before, name, **labels)

    upstream_labels = {"model": SONNET, "deployment": "d-sonnet"}
    assert delta("gateway_upstream_latency_seconds_count", **upstream_labels) == 2
    assert 0.16 <= delta("gateway_upstream_latency_seconds_sum", **upstream_labels) < 1.0
    overhead = {"route": "/v1/messages", "model": SONNET}
    assert delta("gateway_overhead_seconds_count", **overhead) == 2
    assert delta("gateway_overhead_seconds_sum", **overhead) < 0.05
    to_first = delta("gateway_time_to_first_event_seconds_sum", **overhead)
    assert to_first >= 0.16


def test_a_stream_the_server_never_started_still_finishes(app, client, upstream, auth_headers):
    """A server may close the response without iterating it (client gone at once): the
    relay's ``finally`` never runs, ``call_on_close`` finishes the record instead."""
    upstream.add(responses.POST, deployment_url("d-sonnet") + "/invoke-with-response-stream",
                 body=bedrock_stream())
    environ = EnvironBuilder(method="POST", path="/v1/messages", json=simple_body(stream=True),
                             headers=auth_headers).get_environ()
    started: list[str] = []
    body = app(environ, lambda status, headers, exc_info=None: started.append(status))
    assert started == ["200 OK"]
    assert sample(client.get("/metrics").get_data(as_text=True), "gateway_streams_in_flight") == 1
    body.close()  # never iterated
    assert sample(client.get("/metrics").get_data(as_text=True), "gateway_streams_in_flight") == 0


@pytest.mark.parametrize("incoming, kept", [
    ("trace-01.AB_cd", True), ("x" * 64, True), ("x" * 65, False), ("has space", False),
    ("semi;colon", False), ("", False), (CLIENT_KEY, False)])
def test_incoming_request_id_is_honoured_when_safe(client, incoming, kept):
    resp = client.get("/health", headers={"X-Request-Id": incoming})
    rid = resp.headers["request-id"]
    assert resp.headers["x-request-id"] == rid
    assert (rid == incoming) is kept
    if not kept:
        assert rid.startswith("req_") and len(rid) == 28


def test_json_access_lines_carry_client_address_and_agent_and_no_secret(
        client, upstream, auth_headers):
    upstream.add(responses.POST, deployment_url("d-sonnet") + "/invoke", json=bedrock_message())
    root = logging.getLogger()
    saved_level = root.level
    handler = next((h for h in root.handlers if getattr(h, "gateway_handler", False)), None)
    saved_formatter = handler.formatter if handler else None
    lines: list[str] = []

    class Keep(logging.Handler):
        def emit(self, record):
            lines.append(self.format(record))

    configure_logging("INFO", "json")
    handler = next(h for h in root.handlers if getattr(h, "gateway_handler", False))
    keep = Keep()
    keep.setFormatter(handler.formatter)
    root.addHandler(keep)
    try:
        client.post("/v1/messages", json=simple_body(),
                    headers={**auth_headers, "User-Agent": "claude-cli/2.1.3 (external, cli)",
                             "X-Request-Id": "trace-42"},
                    environ_base={"REMOTE_ADDR": "10.0.0.9"})
        client.get("/metrics")  # a successful scrape: DEBUG only
    finally:
        root.removeHandler(keep)
        handler.setFormatter(saved_formatter)
        handler.gateway_format = None
        root.setLevel(saved_level)
    parsed = [json.loads(line) for line in lines]
    access = [p for p in parsed if p["logger"] == "gateway.access"]
    assert len(access) == 1
    (line,) = access
    assert line["request_id"] == "trace-42" and line["status"] == 200
    assert line["client_addr"] == "10.0.0.9"
    assert line["user_agent"] == "claude-cli/2.1.3 (external, cli)"
    assert line["key"] == "team-a" and line["sap_model"] == SONNET
    assert CLIENT_KEY not in "\n".join(lines)
