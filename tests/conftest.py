"""Shared fixtures: settings -> app -> client, and a `responses` mock of SAP AI Core."""

from __future__ import annotations

import pytest
import responses

from app import create_app, runtime
from tests.http_fakes import AUTH_URL, CLIENT_KEY, make_settings, register_token


@pytest.fixture
def upstream():
    with responses.RequestsMock(assert_all_requests_are_fired=False) as mock:
        register_token(mock)
        yield mock


@pytest.fixture
def settings(tmp_path):
    return make_settings(tmp_path)


@pytest.fixture
def app(settings, upstream):
    application = create_app(settings)
    yield application
    runtime.install(None)


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth_headers():
    return {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}


__all__ = ["AUTH_URL"]
