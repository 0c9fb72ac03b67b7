"""Configuration loading: the earlier proxy's format, the environment, and clear errors."""

from __future__ import annotations

import json

import pytest

from app.config import ConfigError, key_digest, load_settings, settings_from_file

KEY = {"clientid": "sb-abc!b1|aicore!b540", "clientsecret": "sec",
       "url": "https://tenant.authentication.eu10.hana.ondemand.com/",
       "identityzoneid": "zone-1",
       "serviceurls": {"AI_API_URL": "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com/"}}


def write_config(tmp_path, config, key=KEY):
    (tmp_path / "sub1-key.json").write_text(json.dumps(key))
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config) if not isinstance(config, str) else config)
    return path


def base_config(**extra):
    config = {"subAccounts": {"sub1": {
        "resource_group": "default", "service_key_json": "sub1-key.json",
        "deployment_models": {"anthropic--claude-4.5-sonnet": [
            "https://api.ai.example/v2/inference/deployments/d1/",
            "https://api.ai.example/v2/inference/deployments/d2"]}}},
        "secret_authentication_tokens": ["k1", "k2"], "host": "127.0.0.1", "port": 3001}
    config.update(extra)
    return config


def test_earlier_proxy_format_is_accepted_unchanged(tmp_path):
    settings = settings_from_file(write_config(tmp_path, base_config()), {})
    (sub,) = settings.subaccounts
    assert sub.service_key.token_url == \
        "https://tenant.authentication.eu10.hana.ondemand.com/oauth/token"
    assert sub.service_key.api_url == "https://api.ai.prod.eu-central-1.aws.ml.hana.ondemand.com"
    assert sub.deployment_models["anthropic--claude-4.5-sonnet"] == (
        "https://api.ai.example/v2/inference/deployments/d1",
        "https://api.ai.example/v2/inference/deployments/d2")
    assert not sub.discover
    assert key_digest("k1") in settings.client_key_digests
    assert "k1" not in repr(settings) and "sec" not in repr(sub.service_key)


def test_labels_and_discovery(tmp_path):
    config = base_config(secret_authentication_tokens=[{"key": "k9", "label": "team-x"}])
    del config["subAccounts"]["sub1"]["deployment_models"]
    settings = settings_from_file(write_config(tmp_path, config), {})
    assert settings.client_key_digests[key_digest("k9")] == "team-x"
    assert settings.subaccounts[0].discover


@pytest.mark.parametrize("mutate,expected", [
    (lambda c: c.pop("subAccounts"), "subAccounts"),
    (lambda c: c["subAccounts"]["sub1"].pop("service_key_json"), "subAccounts.sub1.service_key_json"),
    (lambda c: c["subAccounts"]["sub1"].update(service_key_json="missing.json"), "missing.json"),
    (lambda c: c.update(secret_authentication_tokens=[]), "secret_authentication_tokens"),
    (lambda c: c.update(secret_authentication_tokens=[""]), "secret_authentication_tokens[0]"),
    (lambda c: c["subAccounts"]["sub1"].update(deployment_models={"m": ["ftp://x"]}), "not a URL"),
    (lambda c: c.update(port="80"), "port"),
    (lambda c: c.update(model_aliases=["x"]), "model_aliases"),
])
def test_mistakes_name_the_file_and_field(tmp_path, mutate, expected):
    config = base_config()
    mutate(config)
    path = write_config(tmp_path, config)
    with pytest.raises(ConfigError) as info:
        settings_from_file(path, {})
    assert expected in str(info.value)


def test_bad_json_and_bad_service_key(tmp_path):
    with pytest.raises(ConfigError, match="config.json: invalid JSON"):
        settings_from_file(write_config(tmp_path, "{oops"), {})
    with pytest.raises(ConfigError, match="clientsecret"):
        settings_from_file(write_config(tmp_path, base_config(), key={**KEY, "clientsecret": ""}), {})
    x509 = {k: v for k, v in KEY.items() if k != "clientsecret"}
    x509.update({"credential-type": "x509", "certificate": "c", "key": "k"})
    with pytest.raises(ConfigError, match="X.509"):
        settings_from_file(write_config(tmp_path, base_config(), key=x509), {})


def test_no_keys_allowed_only_when_explicit(tmp_path):
    config = base_config(secret_authentication_tokens=[], allow_unauthenticated=True)
    assert settings_from_file(write_config(tmp_path, config), {}).allow_unauthenticated


def test_environment_only_configuration(tmp_path):
    env = {"AICORE_CLIENT_ID": "id", "AICORE_CLIENT_SECRET": "s",
           "AICORE_AUTH_URL": "https://auth.example/oauth/token",
           "AICORE_BASE_URL": "https://api.example/v2", "AICORE_RESOURCE_GROUP": "rg",
           "GATEWAY_CLIENT_KEYS": "a,b", "CONFIG_PATH": "",
           "HOME": str(tmp_path), "PORT": "5000"}
    import os
    cwd = os.getcwd()
    os.chdir(tmp_path)
    try:
        settings = load_settings(env)
    finally:
        os.chdir(cwd)
    (sub,) = settings.subaccounts
    assert sub.service_key.token_url == "https://auth.example/oauth/token"
    assert sub.service_key.api_url == "https://api.example"
    assert sub.resource_group == "rg" and sub.discover
    assert len(settings.client_key_digests) == 2
    assert settings.token_usage_log == "-"


def test_whole_service_key_in_one_variable(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    settings = load_settings({"AICORE_SERVICE_KEY": json.dumps(KEY), "GATEWAY_CLIENT_KEYS": "a",
                              "HOME": str(tmp_path)})
    assert settings.subaccounts[0].service_key.client_id == KEY["clientid"]


def test_sdk_config_file_in_home(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".aicore").mkdir()
    (tmp_path / ".aicore" / "config.json").write_text(json.dumps({
        "AICORE_CLIENT_ID": "id", "AICORE_CLIENT_SECRET": "s",
        "AICORE_AUTH_URL": "https://auth.example", "AICORE_BASE_URL": "https://api.example",
        "AICORE_RESOURCE_GROUP": "team"}))
    settings = load_settings({"HOME": str(tmp_path), "GATEWAY_CLIENT_KEYS": "a"})
    assert settings.subaccounts[0].resource_group == "team"


def test_nothing_configured_is_one_clear_message(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    with pytest.raises(ConfigError, match="no configuration"):
        load_settings({"HOME": str(tmp_path)})
    with pytest.raises(ConfigError, match="CONFIG_PATH"):
        load_settings({"HOME": str(tmp_path), "CONFIG_PATH": str(tmp_path / "nope.json")})
