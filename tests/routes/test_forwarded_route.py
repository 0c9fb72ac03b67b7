"""What Flask's ``request.remote_addr`` and ``request.scheme`` are, as ``create_app`` wires them.

A probe route is added to the factory-built app so the test reads exactly what views
(and the request log) see; requests come from the test client with a chosen peer address.
"""

from __future__ import annotations

import pytest
from flask import request

from app import create_app, runtime
from tests.http_fakes import make_settings


def probe(settings):
    app = create_app(settings)
    app.add_url_rule("/_probe", "probe",
                     lambda: {"remote_addr": request.remote_addr, "scheme": request.scheme})
    return app.test_client()


@pytest.fixture
def behind_proxy(tmp_path, upstream):
    yield probe(make_settings(tmp_path, trusted_proxies=("10.0.0.0/8", "::1/128")))
    runtime.install(None)


@pytest.fixture
def direct(tmp_path, upstream):
    yield probe(make_settings(tmp_path))
    runtime.install(None)


def seen(client, peer: str, **headers) -> dict:
    resp = client.get("/_probe", environ_base={"REMOTE_ADDR": peer},
                      headers={k.replace("_", "-"): v for k, v in headers.items()})
    assert resp.status_code == 200, resp.text
    return resp.json


def test_a_trusted_proxy_gives_the_client_address_and_scheme(behind_proxy):
    assert seen(behind_proxy, "10.0.0.5", X_Forwarded_For="6.6.6.6, 198.51.100.20",
                X_Forwarded_Proto="https") == {"remote_addr": "198.51.100.20", "scheme": "https"}
    assert seen(behind_proxy, "::1", X_Forwarded_For="2001:db8::7")["remote_addr"] == "2001:db8::7"


def test_an_untrusted_peer_cannot_spoof(behind_proxy):
    assert seen(behind_proxy, "198.51.100.20", X_Forwarded_For="10.0.0.1",
                X_Forwarded_Proto="https") == {"remote_addr": "198.51.100.20", "scheme": "http"}


def test_without_trusted_proxies_forwarded_headers_are_ignored(direct):
    assert seen(direct, "127.0.0.1", X_Forwarded_For="198.51.100.20",
                X_Forwarded_Proto="https") == {"remote_addr": "127.0.0.1", "scheme": "http"}
