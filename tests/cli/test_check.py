"""``python -m app check`` against the simulated SAP AI Core: success and each failure kind."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from app.__main__ import main
from app.simulator import FakeAICore, Step
from tests.paths import REPO

SONNET = "anthropic--claude-4.5-sonnet"
HAIKU = "anthropic--claude-4.5-haiku"
CLIENT_KEY = "check-client-key-123"
WRONG_SECRET = "not-the-secret-9f3a"


@pytest.fixture
def fake():
    with FakeAICore(client_secret="sim-secret-77c1") as server:
        yield server


def write_config(tmp_path, fake, *, subaccounts=None, **extra) -> str:
    (tmp_path / "key.json").write_text(json.dumps(fake.service_key()))
    config = {"subAccounts": subaccounts or {"sub1": {"service_key_json": "key.json"}},
              "secret_authentication_tokens": [{"key": CLIENT_KEY, "label": "team-a"}],
              "port": 3999, **extra}
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return str(path)


def check(config: str, *args: str, capsys) -> tuple[int, str, str]:
    code = main(["check", "--config", config, *args])
    out, err = capsys.readouterr()
    return code, out, err


def table_row(out: str, *cells: str) -> str:
    """The one table line holding all of ``cells``."""
    (line,) = [line for line in out.splitlines() if all(c in line for c in cells)]
    return line


def assert_no_secrets(text: str, fake: FakeAICore) -> None:
    for secret in (CLIENT_KEY, fake.client_secret, WRONG_SECRET, "tok-1", "tok-2", "Basic "):
        assert secret not in text


def test_a_good_setup_lists_probes_and_prints_the_claude_code_lines(tmp_path, fake, capsys):
    fake.add_deployment("d-sonnet", SONNET)
    fake.add_deployment("d-haiku", HAIKU)
    config = write_config(tmp_path, fake, model_aliases={"claude-opus-5-5": SONNET})
    code, out, err = check(config, capsys=capsys)
    assert code == 0, out + err
    assert table_row(out, "sub1", SONNET, "d-sonnet", " ok ", "ok ").rstrip().endswith("ms")
    assert table_row(out, "sub1", HAIKU, "d-haiku").split()[3:5] == ["ok", "ok"]
    assert (f"  {SONNET}: {SONNET}, claude-opus-5-5, claude-sonnet-4-5, other claude-sonnet-* "
            "ids (newest sonnet)") in out
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:3999\n" in out
    assert "export ANTHROPIC_AUTH_TOKEN='<one of your gateway keys>'\n" in out
    assert f"export ANTHROPIC_MODEL={SONNET}\n" in out
    assert f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={HAIKU}\n" in out
    assert f"export ANTHROPIC_DEFAULT_OPUS_MODEL={SONNET}\n" in out
    assert "export CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC=1\n" in out
    assert out.rstrip().endswith("check: all ok")
    assert_no_secrets(out + err, fake)
    # one probe per deployment, through the gateway's own sanitizer: a Bedrock /invoke body
    probes = fake.inference_requests
    assert sorted(r.deployment_id for r in probes) == ["d-haiku", "d-sonnet"]
    for probe in probes:
        assert probe.path.endswith("/invoke")
        assert probe.json["max_tokens"] == 1
        assert probe.json["anthropic_version"] == "bedrock-2023-05-31"
        assert "model" not in probe.json


def test_gpt_gemini_and_embeddings_deployments_are_probed_in_their_own_apis(tmp_path, fake,
                                                                           capsys):
    fake.add_deployment("d-gpt", "gpt-5.4")
    fake.add_deployment("d-gem", "gemini-2.5-pro")
    fake.add_deployment("d-emb", "text-embedding-3-small")
    code, out, err = check(write_config(tmp_path, fake), capsys=capsys)
    assert code == 0, out + err
    for model, dep in (("gpt-5.4", "d-gpt"), ("gemini-2.5-pro", "d-gem"),
                       ("text-embedding-3-small", "d-emb")):
        assert table_row(out, "sub1", model, dep).split()[3:5] == ["ok", "ok"]
    paths = {r.deployment_id: r.path for r in fake.inference_requests}
    assert paths["d-gpt"].endswith("/chat/completions")
    assert paths["d-gem"].endswith("/models/gemini-2.5-pro:generateContent")
    assert paths["d-emb"].endswith("/embeddings")
    # no Claude model: Claude Code still gets a model it can use through the gateway
    assert "export ANTHROPIC_MODEL=gemini-2.5-pro\n" in out


def test_a_failing_gpt_deployment_fails_the_check(tmp_path, fake, capsys):
    fake.add_deployment("d-gpt", "gpt-5.4")
    fake.script("d-gpt", 500, 500, 500)
    code, out, err = check(write_config(tmp_path, fake), capsys=capsys)
    assert code == 1
    assert "FAILED" in table_row(out, "sub1", "gpt-5.4", "d-gpt")


def test_the_probe_reauthenticates_once_on_a_revoked_token(tmp_path, fake, capsys):
    fake.add_deployment("d-sonnet", SONNET)
    fake.script("d-sonnet", Step(revoke_token=True))
    code, out, _ = check(write_config(tmp_path, fake), capsys=capsys)
    assert code == 0, out
    assert fake.token_calls == 2


def test_base_url_option_and_gateway_bind(tmp_path, fake, capsys, monkeypatch):
    fake.add_deployment("d-sonnet", SONNET)
    config = write_config(tmp_path, fake)
    check(config, "--base-url", "https://gw.example.test/", capsys=capsys)
    monkeypatch.setenv("GATEWAY_BIND", "0.0.0.0:4100")
    code, out, _ = check(config, capsys=capsys)
    assert code == 0
    assert "export ANTHROPIC_BASE_URL=http://127.0.0.1:4100\n" in out


def test_bad_configuration_is_one_line_and_exit_1(tmp_path, fake, capsys):
    config = write_config(tmp_path, fake, port="eighty")
    code, out, err = check(config, capsys=capsys)
    assert code == 1 and out == ""
    assert err == f"check: configuration error: {config}: field 'port' must be a TCP port number\n"
    assert fake.token_calls == 0


def test_bad_configuration_through_python_dash_m(tmp_path, fake):
    config = write_config(tmp_path, fake, secret_authentication_tokens=[])
    proc = subprocess.run([sys.executable, "-m", "app", "check", "--config", config], cwd=REPO,
                          capture_output=True, text=True, timeout=60)
    assert proc.returncode == 1
    assert proc.stderr.startswith(f"check: configuration error: {config}: no client keys")
    assert len(proc.stderr.splitlines()) == 1 and "Traceback" not in proc.stderr


@pytest.fixture
def idp_down():
    with FakeAICore() as server:
        server.idp_down = True
        yield server


@pytest.mark.parametrize("failure,detail", [
    ("wrong_secret", "upstream authentication failed: the SAP identity service answered 401"),
    ("idp_down", "upstream authentication failed: the SAP identity service is unavailable (503)"),
])
def test_token_failure_of_one_subaccount(tmp_path, fake, idp_down, capsys, failure, detail):
    fake.add_deployment("d-sonnet", SONNET)
    bad_key = fake.service_key()
    bad_key["clientid"], bad_key["clientsecret"] = "sb-other!b2|aicore!b540", WRONG_SECRET
    if failure == "idp_down":
        bad_key["url"] = idp_down.base_url + "/auth"
    subaccounts = {"sub1": {"service_key_json": "key.json"},
                   "sub2": {"service_key_json": bad_key}}
    code, out, err = check(write_config(tmp_path, fake, subaccounts=subaccounts), capsys=capsys)
    assert code == 1
    assert table_row(out, "sub1", SONNET, "d-sonnet").split()[3:5] == ["ok", "ok"]
    assert table_row(out, "sub2", "FAILED").split(None, 4)[4] == "FAILED: " + detail
    assert out.rstrip().endswith("check: 1 problem(s); see FAILED above")
    assert_no_secrets(out + err, fake)


@pytest.mark.parametrize("status,detail", [
    (400, "The provided request is not valid"),
    (403, "SAP AI Core refused the gateway's credentials"),
    (429, "SAP AI Core throttled anthropic--claude-4.5-haiku"),
    (500, "SAP AI Core error 500 for anthropic--claude-4.5-haiku"),
    (503, "SAP AI Core is overloaded for anthropic--claude-4.5-haiku"),
])
def test_a_deployment_failing_its_probe(tmp_path, fake, capsys, status, detail):
    fake.add_deployment("d-sonnet", SONNET)
    fake.add_deployment("d-haiku", HAIKU)
    fake.script("d-haiku", Step(status=status))
    code, out, _ = check(write_config(tmp_path, fake), capsys=capsys)
    assert code == 1
    assert table_row(out, "sub1", SONNET, "d-sonnet").split()[3:5] == ["ok", "ok"]
    haiku = table_row(out, "sub1", HAIKU, "d-haiku")
    assert haiku.split()[3] == "ok" and haiku.split(None, 4)[4].startswith("FAILED: " + detail)
    assert len([r for r in fake.inference_requests if r.deployment_id == "d-haiku"]) == 1
    # the lines name only models that answered
    assert f"export ANTHROPIC_DEFAULT_HAIKU_MODEL={SONNET}\n" in out


def test_no_deployment_discovered(tmp_path, fake, capsys):
    code, out, _ = check(write_config(tmp_path, fake), capsys=capsys)
    assert code == 1
    assert table_row(out, "sub1").split(None, 4)[4] == \
        "FAILED: no RUNNING deployment discovered in resource group default"
    assert "# no chat model is deployed" in out


def test_a_configured_model_that_discovery_does_not_find(tmp_path, fake, capsys):
    fake.add_deployment("d-sonnet", SONNET)
    subaccounts = {"sub1": {"service_key_json": "key.json",
                            "deployment_models": {SONNET: [], HAIKU: []}}}
    code, out, _ = check(write_config(tmp_path, fake, subaccounts=subaccounts), capsys=capsys)
    assert code == 1
    assert table_row(out, "sub1", HAIKU).split(None, 4)[4] == \
        "FAILED: no RUNNING deployment of this model discovered"
