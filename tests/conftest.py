"""Shared fixtures: settings -> app -> client, and a `responses` mock of SAP AI Core."""

from __future__ import annotations

import pytest
import responses
from flask import Flask
from flask.testing import FlaskClient

from app import create_app, runtime
from tests import secret_scan
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


class ServerLikeClient(FlaskClient):
    """Reads the whole answer and closes it, as gunicorn does after writing the last byte
    (that close is what finishes a request's record); ``buffered=False`` keeps a stream open
    for a test that reads it bit by bit and closes it itself."""

    def open(self, *args, **kwargs):
        kwargs.setdefault("buffered", True)
        return super().open(*args, **kwargs)


Flask.test_client_class = ServerLikeClient  # every test's client, however it was made


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def auth_headers():
    return {"x-api-key": CLIENT_KEY, "anthropic-version": "2023-06-01"}


__all__ = ["AUTH_URL"]


# --------------------------------------------------------------------------- secret scan
# Everything the gateway wrote during the suite is grepped for secrets at the end
# (tests/secret_scan.py); a leak fails the run.
_collector = secret_scan.GatewayLogCollector()


def pytest_sessionstart(session):
    _collector.install()


def pytest_sessionfinish(session, exitstatus):
    _collector.uninstall()
    factory = getattr(session.config, "_tmp_path_factory", None)
    if factory is None:
        return
    leaks, read = secret_scan.scan(factory.getbasetemp(), _collector)
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if leaks:
        if reporter is not None:
            reporter.write("\n")
            reporter.write_line(f"SECRET LEAK in what the gateway wrote ({len(leaks)}):", red=True)
            for leak in leaks[:50]:
                reporter.write_line("  " + leak, red=True)
        session.exitstatus = pytest.ExitCode.TESTS_FAILED
    elif reporter is not None and reporter.verbosity >= 0:
        reporter.write_line(f"secret scan: {read} gateway outputs, no secret found")
