"""``python -m app usage`` on a known log: golden totals, rotation globs, bad lines, prices."""

from __future__ import annotations

import gzip
import json
import shutil

import pytest

from app.__main__ import main
from app.config import ConfigError, settings_from_file
from app.usage import DEFAULT_PRICES, parse_line
from tests.paths import REPO

FIXTURES = REPO / "tests" / "fixtures" / "usage"
KEY = {"clientid": "id", "clientsecret": "sec", "url": "https://auth.example",
       "serviceurls": {"AI_API_URL": "https://api.example"}}


@pytest.fixture
def logs(tmp_path, monkeypatch):
    """The fixture logs as rotation leaves them: current, .1, and an older gzipped .2."""
    monkeypatch.setenv("CONFIG_PATH", str(tmp_path / "no-config.json"))
    shutil.copy(FIXTURES / "token_usage.log", tmp_path / "token_usage.log")
    shutil.copy(FIXTURES / "token_usage.log.1", tmp_path / "token_usage.log.1")
    with gzip.open(tmp_path / "token_usage.log.2.gz", "wt") as gz:
        gz.write((FIXTURES / "token_usage.log.2").read_text())
    return tmp_path


def usage(capsys, *args: str) -> tuple[int, str, str]:
    code = main(["usage", *args])
    out, err = capsys.readouterr()
    return code, out, err


def report(capsys, *args: str) -> dict:
    code, out, _ = usage(capsys, *args, "--json")
    assert code == 0
    return json.loads(out)


def test_golden_totals_per_label_model_and_day(logs, capsys):
    code, out, err = usage(capsys, "--log", str(logs / "token_usage*.log*"), "--json")
    assert code == 0
    result = json.loads(out)
    expected = json.loads((FIXTURES / "by_label_model_day.json").read_text())
    assert {k: result[k] for k in expected} == expected
    assert sorted(result["files"]) == sorted(str(logs / n) for n in (
        "token_usage.log", "token_usage.log.1", "token_usage.log.2.gz"))
    assert "estimates" in result["note"]
    assert f"skipped 1 malformed line(s) in {logs / 'token_usage.log'} (first: line 6)" in err
    assert f"skipped 2 malformed line(s) in {logs / 'token_usage.log.1'} (first: line 3)" in err


def test_golden_table_by_label(logs, capsys):
    code, out, _ = usage(capsys, "--log", str(logs / "token_usage.log*"), "--by", "label")
    assert code == 0
    assert out == (FIXTURES / "by_label.txt").read_text()


def test_since_and_grouping_by_day(logs, capsys):
    result = report(capsys, "--log", str(logs / "token_usage.log*"), "--since", "2026-01-10",
                    "--by", "day")
    assert [(r["day"], r["requests"], r["cost_usd"]) for r in result["rows"]] == [
        ("2026-01-10", 4, 0.07725)]


def test_several_log_options_and_a_pattern_matching_nothing(logs, capsys):
    code, out, err = usage(capsys, "--log", str(logs / "token_usage.log"),
                           "--log", str(logs / "token_usage.log.1"),
                           "--log", str(logs / "nothing*.log"), "--by", "label", "--json")
    assert code == 0
    assert json.loads(out)["total"]["requests"] == 6  # without the gzipped day
    assert f"no file matches {logs / 'nothing*.log'}" in err


def test_no_log_at_all_is_an_error(tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("CONFIG_PATH", str(tmp_path / "no-config.json"))
    code, _, err = usage(capsys, "--log", str(tmp_path / "absent*.log"))
    assert code == 1 and "no usage log to read" in err


def test_prices_from_a_file_replace_the_built_in_ones(logs, capsys):
    prices = logs / "prices.json"
    prices.write_text(json.dumps({
        "anthropic--claude-4.5-sonnet": {"input": 1, "output": 1, "cache_read": 0,
                                         "cache_write": 0},
        "anthropic--claude-9-sonnet": {"input": 1000, "output": 1000, "cache_read": 0,
                                       "cache_write": 0}}))
    result = report(capsys, "--log", str(logs / "token_usage.log*"), "--by", "model",
                    "--prices", str(prices))
    costs = {r["model"]: r["cost_usd"] for r in result["rows"]}
    assert costs == {"anthropic--claude-4.5-haiku": 0.017, "anthropic--claude-4.5-opus": 0.003,
                     "anthropic--claude-4.5-sonnet": 0.0041, "anthropic--claude-9-sonnet": 0.02}
    assert result["unpriced_models"] == []


def test_config_prices_are_used_and_a_prices_file_wins(logs, capsys):
    config = logs / "config.json"
    config.write_text(json.dumps({
        "subAccounts": {"s": {"service_key_json": KEY}}, "secret_authentication_tokens": ["k"],
        "token_usage_log": str(logs / "token_usage.log"),
        "prices": {"anthropic--claude-4.5-haiku": {"input": 0, "output": 0, "cache_read": 0,
                                                   "cache_write": 0},
                   "anthropic--claude-4.5-opus": {"input": 0, "output": 0, "cache_read": 0,
                                                  "cache_write": 0}}}))
    file_prices = logs / "prices.json"
    file_prices.write_text(json.dumps({"anthropic--claude-4.5-opus": {
        "input": 10, "output": 10, "cache_read": 10, "cache_write": 10}}))
    # no --log: the configured token_usage_log and its rotated files
    result = report(capsys, "--config", str(config), "--by", "model", "--prices",
                    str(file_prices))
    costs = {r["model"]: r["cost_usd"] for r in result["rows"]}
    assert costs["anthropic--claude-4.5-haiku"] == 0.0
    assert costs["anthropic--claude-4.5-opus"] == 0.002
    assert result["total"]["requests"] == 7


@pytest.mark.parametrize("prices,fragment", [
    ([], "field 'prices' must map SAP model names"),
    ({"m": {"input": 1}}, "entry 'm' must have exactly input, output, cache_read, cache_write "
                          "(missing: output, cache_read, cache_write; unknown: -)"),
    ({"m": {"input": -1, "output": 1, "cache_read": 1, "cache_write": 1}},
     "'m'.input must be a number >= 0"),
    ({"m": {"input": "3", "output": 1, "cache_read": 1, "cache_write": 1, "x": 1}},
     "unknown: x"),
])
def test_price_mistakes_name_the_file_and_field(tmp_path, prices, fragment):
    path = tmp_path / "config.json"
    path.write_text(json.dumps({"subAccounts": {"s": {"service_key_json": KEY}},
                                "secret_authentication_tokens": ["k"], "prices": prices}))
    with pytest.raises(ConfigError) as info:
        settings_from_file(path, {})
    assert str(info.value).startswith(f"{path}: field 'prices'")
    assert fragment in str(info.value)


def test_a_bad_prices_file_is_one_line_and_exit_1(logs, capsys):
    bad = logs / "prices.json"
    bad.write_text("{not json")
    code, out, err = usage(capsys, "--log", str(logs / "token_usage.log"), "--prices", str(bad))
    assert code == 1 and out == ""
    assert f"usage: {bad}: invalid JSON in prices file" in err


@pytest.mark.parametrize("line", [
    "", "[]", '"text"', '{"time": 5}', '{"time": "yesterday"}',
    '{"time": "2026-01-10T00:00:00Z", "output_tokens": -1}',
    '{"time": "2026-01-10T00:00:00Z", "output_tokens": true}',
])
def test_malformed_lines_are_not_records(line):
    assert parse_line(line) is None


def test_a_line_without_sap_model_falls_back_to_the_client_model():
    record = parse_line('{"time": "2026-01-10T00:00:00Z", "key": "k", "model": "claude-x", '
                        '"sap_model": "-", "output_tokens": 3}')
    assert (record.model, record.tokens["output"], record.tokens["input"]) == ("claude-x", 3, 0)


def test_default_prices_are_complete_and_cache_is_priced_apart():
    for model, price in DEFAULT_PRICES.items():
        assert set(price) == {"input", "output", "cache_read", "cache_write"}
        assert price["cache_read"] < price["input"] < price["cache_write"] < price["output"]
