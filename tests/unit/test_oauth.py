"""TokenProvider: caching with margin, single flight, failure memory, compare-then-invalidate."""

from __future__ import annotations

import threading
import time

import pytest
import responses

from app.errors import BadGateway, UpstreamFailure
from app.upstream.client import build_session
from app.upstream.oauth import TokenProvider
from tests.http_fakes import TOKEN_URL, register_token, service_key, token_calls


class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


def provider(clock=None):
    return TokenProvider(service_key(), build_session(8), clock=clock or Clock())


def test_token_cached_until_margin_before_expiry():
    clock = Clock()
    tokens = provider(clock)
    with responses.RequestsMock() as mock:
        register_token(mock, expires_in=3000)  # margin = min(300, 300) = 300
        assert tokens.token() == "tok-1"
        clock.now += 2699
        assert tokens.token() == "tok-1"
        clock.now += 2
        assert tokens.token() == "tok-2"
        assert token_calls(mock) == 2
        request = mock.calls[0].request
        assert request.headers["Authorization"].startswith("Basic ")
        assert "grant_type=client_credentials" in request.body


def test_short_tokens_use_a_tenth_as_margin():
    clock = Clock()
    tokens = provider(clock)
    with responses.RequestsMock() as mock:
        register_token(mock, expires_in=10)
        tokens.token()
        clock.now += 8.9
        assert tokens.token() == "tok-1"
        clock.now += 0.2
        assert tokens.token() == "tok-2"


def test_single_flight_under_concurrency():
    tokens = provider(time.monotonic)
    started = threading.Event()

    def slow_token(request):
        started.set()
        time.sleep(0.2)
        return 200, {}, '{"access_token": "tok-x", "expires_in": 3600}'

    with responses.RequestsMock() as mock:
        mock.add_callback(responses.POST, TOKEN_URL, callback=slow_token)
        results = []
        threads = [threading.Thread(target=lambda: results.append(tokens.token()))
                   for _ in range(50)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(5)
        assert results == ["tok-x"] * 50
        assert token_calls(mock) == 1


def test_invalidate_only_the_token_that_failed():
    tokens = provider()
    with responses.RequestsMock() as mock:
        register_token(mock)
        first = tokens.token()
        tokens.invalidate("some-older-token")
        assert tokens.token() == first
        tokens.invalidate(first)
        assert tokens.token() == "tok-2"


def test_failures_are_remembered_briefly_and_never_cached_as_token():
    clock = Clock()
    tokens = provider(clock)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, status=401,
                 json={"error": "unauthorized", "error_description": "Bad credentials"})
        with pytest.raises(UpstreamFailure, match="authentication failed"):
            tokens.token()
        with pytest.raises(UpstreamFailure):
            tokens.token()
        assert token_calls(mock) == 1
        clock.now += 6
        mock.replace(responses.POST, TOKEN_URL, json={"access_token": "ok", "expires_in": 60})
        assert tokens.token() == "ok"


def test_unreachable_identity_service_is_bad_gateway():
    import requests

    tokens = provider()
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL, body=requests.ConnectionError("down"))
        with pytest.raises(BadGateway):
            tokens.token()


def test_a_token_inside_its_margin_is_used_while_the_identity_service_fails():
    clock = Clock()
    tokens = provider(clock)
    with responses.RequestsMock() as mock:
        register_token(mock, expires_in=1000)  # refresh due after 900 s, expires at 1000 s
        assert tokens.token() == "tok-1"
        clock.now += 950
        mock.replace(responses.POST, TOKEN_URL, status=503, body="down")
        assert tokens.token() == "tok-1"  # the refresh failed: the old token still works
        assert tokens.token() == "tok-1"  # (the failure is remembered: no second fetch)
        assert token_calls(mock) == 2
        clock.now += 60  # now past its real expiry
        with pytest.raises(BadGateway, match="identity service"):
            tokens.token()
        tokens_after_revocation = provider(clock)
        mock.replace(responses.POST, TOKEN_URL, json={"access_token": "t", "expires_in": 1000})
        first = tokens_after_revocation.token()
        tokens_after_revocation.invalidate(first)  # SAP said 401: never fall back to it
        mock.replace(responses.POST, TOKEN_URL, status=503, body="down")
        with pytest.raises(BadGateway):
            tokens_after_revocation.token()


@pytest.mark.parametrize("expires_in", ["Infinity", "NaN", "-5", "true", '"soon"'])
def test_an_odd_expires_in_falls_back_to_an_hour(expires_in):
    clock = Clock()
    tokens = provider(clock)
    with responses.RequestsMock() as mock:
        mock.add(responses.POST, TOKEN_URL,
                 body='{"access_token": "tok", "expires_in": %s}' % expires_in)
        assert tokens.token() == "tok"
        clock.now += 3600 - 300 - 1
        assert tokens.token() == "tok"
        assert token_calls(mock) == 1
