"""Configuration of /metrics access, log format and usage-log rotation: defaults,
environment overrides, and one clear error per mistake."""

from __future__ import annotations

import hashlib
import ipaddress

import pytest

from app.config import ConfigError, settings_from_file
from tests.unit.test_config import base_config, write_config


def load(tmp_path, env=None, **extra):
    return settings_from_file(write_config(tmp_path, base_config(**extra)), env or {})


def test_defaults(tmp_path):
    s = load(tmp_path)
    assert s.metrics_token_digest is None
    assert s.metrics_allow_from == (ipaddress.ip_network("127.0.0.0/8"),
                                    ipaddress.ip_network("::1/128"))
    assert s.log_format == "text"
    assert (s.token_usage_log_rotation, s.token_usage_log_keep_days) == ("daily", 0)


def test_file_values(tmp_path):
    s = load(tmp_path, metrics={"token": "prom-secret", "allow_from": ["10.0.0.0/8", "::1"]},
             log_format="JSON", token_usage_log_rotation="none", token_usage_log_keep_days=30)
    assert s.metrics_token_digest == hashlib.sha256(b"prom-secret").digest()
    assert s.metrics_allow_from == (ipaddress.ip_network("10.0.0.0/8"),
                                    ipaddress.ip_network("::1/128"))
    assert s.log_format == "json"
    assert (s.token_usage_log_rotation, s.token_usage_log_keep_days) == ("none", 30)
    assert "prom-secret" not in repr(s)


def test_environment_wins(tmp_path):
    env = {"GATEWAY_METRICS_TOKEN": "env-token", "GATEWAY_METRICS_ALLOW_FROM": "10.1.0.0/16, 127.0.0.1",
           "LOG_FORMAT": "json", "TOKEN_USAGE_LOG_ROTATION": "none",
           "TOKEN_USAGE_LOG_KEEP_DAYS": "7"}
    s = load(tmp_path, env, metrics={"token": "file-token"})
    assert s.metrics_token_digest == hashlib.sha256(b"env-token").digest()
    assert s.metrics_allow_from == (ipaddress.ip_network("10.1.0.0/16"),
                                    ipaddress.ip_network("127.0.0.1/32"))
    assert s.log_format == "json"
    assert (s.token_usage_log_rotation, s.token_usage_log_keep_days) == ("none", 7)


@pytest.mark.parametrize("extra, env, field", [
    ({"metrics": []}, {}, "'metrics'"),
    ({"metrics": {"token": ""}}, {}, "metrics.token"),
    ({"metrics": {"token": 5}}, {}, "metrics.token"),
    ({"metrics": {"allow_from": "10.0.0.0/8"}}, {}, "metrics.allow_from"),
    ({"metrics": {"allow_from": ["10.0.0.0/33"]}}, {}, "10.0.0.0/33"),
    ({}, {"GATEWAY_METRICS_ALLOW_FROM": "localhost"}, "localhost"),
    ({"log_format": "xml"}, {}, "log_format"),
    ({"token_usage_log_rotation": "hourly"}, {}, "token_usage_log_rotation"),
    ({"token_usage_log_keep_days": -1}, {}, "token_usage_log_keep_days"),
    ({"token_usage_log_keep_days": "3"}, {}, "token_usage_log_keep_days"),
    ({}, {"TOKEN_USAGE_LOG_KEEP_DAYS": "week"}, "token_usage_log_keep_days"),
])
def test_mistakes_name_the_field(tmp_path, extra, env, field):
    with pytest.raises(ConfigError) as err:
        load(tmp_path, env, **extra)
    assert field in str(err.value) and "config.json" in str(err.value)
