"""The seed's lessons, proven: nothing on the request path reads files or rebuilds caches."""

from __future__ import annotations

import logging
import sys

import responses

from app import config, runtime
from tests.http_fakes import bedrock_message, bedrock_stream, deployment_url, simple_body

_recording = False
_opened: list[str] = []


def _audit(event: str, args: tuple) -> None:
    if _recording and event == "open":
        _opened.append(str(args[0]))


sys.addaudithook(_audit)


def test_no_file_reads_and_no_rebuilds_per_request(client, upstream, auth_headers, caplog):
    global _recording
    upstream.add(responses.POST, deployment_url("d-sonnet") + "/invoke", json=bedrock_message())
    upstream.add(responses.POST, deployment_url("d-sonnet") + "/invoke-with-response-stream",
                 body=bedrock_stream())

    def one_round():
        assert client.post("/v1/messages", json=simple_body(), headers=auth_headers).status_code == 200
        streamed = client.post("/v1/messages", json=simple_body(stream=True), headers=auth_headers)
        assert b"message_stop" in streamed.get_data()
        assert client.post("/v1/messages/count_tokens", json=simple_body(),
                           headers=auth_headers).status_code == 200
        assert client.get("/v1/models", headers=auth_headers).status_code == 200

    one_round()  # warm-up: lazy imports may open module files once
    rt = runtime.current()
    builds, settings, session = runtime.Runtime.builds, rt.settings, rt.session
    providers = dict(rt.token_providers)
    caplog.clear()
    _recording = True
    try:
        with caplog.at_level(logging.INFO):
            for _ in range(10):
                one_round()
    finally:
        _recording = False
    assert _opened == []
    assert runtime.Runtime.builds == builds
    assert runtime.current() is rt and rt.settings is settings and rt.session is session
    assert rt.token_providers == providers
    assert config._worker_settings is None or config._worker_settings is settings
    access_lines = [r for r in caplog.records if r.name == "gateway.access"]
    assert len(access_lines) == 40  # exactly one line per request
