"""Daily token budgets: what counts, the shared SQLite store, the 429 and its reset time."""

from __future__ import annotations

import calendar
import json
import logging
import subprocess
import sys
import textwrap

import pytest

from app import budget, runtime
from app.budget import BudgetStore, check_budget, counted_tokens, limit_for, record_usage
from app.config import ConfigError, settings_from_file
from app.errors import BudgetExceeded
from tests.paths import REPO as ROOT
from tests.http_fakes import make_settings

# 2026-01-10 23:00:00 UTC: one hour before the daily reset
LATE = float(calendar.timegm((2026, 1, 10, 23, 0, 0)))
NEXT_DAY = LATE + 3600 + 1
USAGE = {"input_tokens": 100, "output_tokens": 50, "cache_read_input_tokens": 10_000,
         "cache_creation_input_tokens": 25}


@pytest.fixture
def budget_settings(tmp_path):
    return make_settings(tmp_path, budgets={"team-a": 1000, "*": 500, "ops": None},
                         budget_store=str(tmp_path / "state" / "budgets.sqlite3"))


def test_counted_tokens_leave_out_cache_reads():
    assert counted_tokens(USAGE) == 175
    assert counted_tokens({"output_tokens": 3}) == 3


def test_limit_for_own_label_then_star_and_null_exempts():
    budgets = {"team-a": 1000, "*": 500, "ops": None}
    assert limit_for(budgets, "team-a") == 1000
    assert limit_for(budgets, "someone") == 500
    assert limit_for(budgets, "ops") is None
    assert limit_for({"team-a": 1000}, "someone") is None


def test_two_connections_share_one_total(tmp_path):
    path = str(tmp_path / "b.sqlite3")
    worker_1, worker_2 = BudgetStore(path, clock=lambda: LATE), BudgetStore(path, clock=lambda: LATE)
    worker_1.add("team-a", "2026-01-10", 40)
    worker_2.add("team-a", "2026-01-10", 2)
    worker_2.add("team-a", "2026-01-11", 7)
    assert worker_1.used("team-a", "2026-01-10") == 42
    assert worker_2.used("team-a", "2026-01-11") == 7
    assert worker_1.used("team-b", "2026-01-10") == 0
    worker_1.close()
    worker_2.close()
    forty_one_days_later = BudgetStore(path, clock=lambda: LATE + 41 * 86_400)
    assert forty_one_days_later.used("team-a", "2026-01-10") == 0  # older than 40 days: gone
    assert forty_one_days_later.used("team-a", "2026-01-11") == 7


def test_concurrent_processes_lose_no_increment(tmp_path):
    """What gunicorn workers do: several processes adding at once to one file."""
    path = tmp_path / "b.sqlite3"
    script = textwrap.dedent(f"""
        from app.budget import BudgetStore
        store = BudgetStore({str(path)!r}, clock=lambda: {LATE!r})
        for _ in range(300):
            store.add("team-a", "2026-01-10", 7)
    """)
    procs = [subprocess.Popen([sys.executable, "-c", script], cwd=ROOT) for _ in range(3)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    assert BudgetStore(str(path), clock=lambda: LATE).used("team-a", "2026-01-10") == 3 * 300 * 7


def test_under_budget_passes_then_over_budget_is_a_429_until_utc_midnight(budget_settings):
    record_usage("team-a", {"input_tokens": 999}, budget_settings, clock=lambda: LATE)
    check_budget("team-a", budget_settings, clock=lambda: LATE)  # 999 < 1000
    record_usage("team-a", {"output_tokens": 1}, budget_settings, clock=lambda: LATE)
    with pytest.raises(BudgetExceeded) as info:
        check_budget("team-a", budget_settings, clock=lambda: LATE + 0.5)
    error = info.value
    assert error.status == 429 and error.should_retry is False
    assert error.retry_after == 3600  # 23:00:00.5 -> midnight, rounded up
    assert error.message == ("daily token budget of client key 'team-a' is used up: 1,000 of "
                             "1,000 tokens today (UTC); it resets at 2026-01-11T00:00:00Z "
                             "(in 1 h 00 min)")
    check_budget("team-a", budget_settings, clock=lambda: NEXT_DAY)  # a new day


def test_star_budget_is_per_label_and_null_is_unlimited(budget_settings):
    record_usage("team-b", {"input_tokens": 500}, budget_settings, clock=lambda: LATE)
    with pytest.raises(BudgetExceeded):
        check_budget("team-b", budget_settings, clock=lambda: LATE)
    check_budget("team-c", budget_settings, clock=lambda: LATE)  # its own 500
    record_usage("ops", {"input_tokens": 10**9}, budget_settings, clock=lambda: LATE)
    check_budget("ops", budget_settings, clock=lambda: LATE)


def test_no_budgets_means_no_store_at_all(tmp_path):
    settings = make_settings(tmp_path, budget_store=str(tmp_path / "never.sqlite3"))
    record_usage("team-a", USAGE, settings)
    check_budget("team-a", settings)
    limited_other = make_settings(tmp_path, budgets={"team-b": 5},
                                  budget_store=str(tmp_path / "never.sqlite3"))
    record_usage("team-a", USAGE, limited_other)  # team-a has no budget: nothing to count
    assert not (tmp_path / "never.sqlite3").exists()


def test_record_usage_uses_the_installed_runtime_settings(budget_settings, upstream):
    runtime.install(None)
    record_usage("team-a", {"input_tokens": 5000})  # no runtime: nothing to do, no error
    runtime.install(runtime.Runtime(budget_settings))
    try:
        record_usage("team-a", {"input_tokens": 5000})
        with pytest.raises(BudgetExceeded):
            check_budget("team-a", budget_settings)
    finally:
        runtime.install(None)


def test_a_broken_store_fails_open_with_a_warning(tmp_path, caplog, monkeypatch):
    monkeypatch.setattr(budget, "_last_warning", [None])
    (tmp_path / "a-directory").mkdir()
    settings = make_settings(tmp_path, budgets={"*": 1},
                             budget_store=str(tmp_path / "a-directory"))
    with caplog.at_level(logging.WARNING, logger="app.budget"):
        record_usage("team-a", USAGE, settings)
        check_budget("team-a", settings)
    assert "cannot update the budget store" in caplog.text


# --------------------------------------------------------------------------- configuration

KEY = {"clientid": "id", "clientsecret": "sec", "url": "https://auth.example",
       "serviceurls": {"AI_API_URL": "https://api.example"}}


def load(tmp_path, **extra):
    config = {"subAccounts": {"s": {"service_key_json": KEY}},
              "secret_authentication_tokens": [{"key": "k1", "label": "team-a"}, "k2"],
              "token_usage_log": str(tmp_path / "logs" / "usage.log")}
    config.update(extra)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(config))
    return settings_from_file(path, {})


def test_budgets_config_and_the_store_beside_the_usage_log(tmp_path):
    settings = load(tmp_path, budgets={"team-a": 2_000_000, "*": 5_000_000})
    assert settings.budgets == {"team-a": 2_000_000, "*": 5_000_000}
    assert settings.budget_store == str(tmp_path / "logs" / "budgets.sqlite3")
    assert load(tmp_path).budgets == {}


@pytest.mark.parametrize("budgets,fragment", [
    ([1], "field 'budgets' must map client key labels"),
    ({"team-a": -5}, "budgets.team-a must be a positive whole number"),
    ({"team-a": 1.5}, "budgets.team-a must be a positive whole number"),
    ({"team-a": True}, "budgets.team-a must be a positive whole number"),
    ({"team-z": 5}, "budgets.team-z: no client key has the label 'team-z' (labels: key-"),
])
def test_budget_mistakes_name_the_file_and_field(tmp_path, budgets, fragment):
    with pytest.raises(ConfigError) as info:
        load(tmp_path, budgets=budgets)
    assert str(tmp_path / "config.json") in str(info.value)
    assert fragment in str(info.value)
    assert "k1" not in str(info.value).replace("key-", "")


def test_budget_429_in_both_dialects():
    from app import errors

    error = BudgetExceeded("used up", retry_after=7200)
    body, status, headers = errors.render(error, errors.OPENAI, "req_1")
    assert status == 429 and json.loads(body)["error"]["code"] == "insufficient_quota"
    assert headers["retry-after"] == "7200" and headers["x-should-retry"] == "false"
    body, status, headers = errors.render(error, errors.ANTHROPIC, "req_1")
    assert json.loads(body)["error"]["type"] == "rate_limit_error"
    plain = errors.render(errors.RateLimited("slow down", retry_after=5), errors.ANTHROPIC, "r")
    assert plain[2]["x-should-retry"] == "true"
