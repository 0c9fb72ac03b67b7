"""The usage log: stable JSON fields, daily file names, retention, and whole lines when
several processes append to the same file at once."""

from __future__ import annotations

import calendar
import glob
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from app.log import RequestRecord, UsageLog, setup_usage_log, usage_file_pattern

ROOT = Path(__file__).resolve().parents[2]
FIELDS = ["time", "request_id", "key", "session", "model", "sap_model", "deployment", "status",
          "input_tokens", "output_tokens", "cache_read_input_tokens",
          "cache_creation_input_tokens"]


def epoch(text: str) -> float:
    return float(calendar.timegm(time.strptime(text, "%Y-%m-%dT%H:%M:%S")))


class Clock:
    def __init__(self, start: str) -> None:
        self.now = epoch(start)

    def __call__(self) -> float:
        return self.now


def rec(request_id: str = "req_1") -> RequestRecord:
    r = RequestRecord(request_id, "POST", "/v1/messages", "/v1/messages")
    r.key_label, r.session_id, r.model = "team-a", "s1", "claude-sonnet-4-5"
    r.sap_model, r.deployment, r.status = "anthropic--claude-4.5-sonnet", "d1", 200
    r.usage = {"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 30,
               "cache_creation_input_tokens": 0}
    return r


def lines(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


def test_line_fields_are_stable_and_dated_by_utc_day(tmp_path):
    clock = Clock("2026-02-01T23:59:59")
    log = UsageLog(str(tmp_path / "logs" / "token_usage.log"), clock=clock)
    log.write(rec("req_a"))
    clock.now += 1  # midnight UTC: the next line opens the next day's file
    log.write(rec("req_b"))
    log.close()
    day1 = tmp_path / "logs" / "token_usage.log.2026-02-01"
    day2 = tmp_path / "logs" / "token_usage.log.2026-02-02"
    (a,) = lines(day1)
    (b,) = lines(day2)
    assert list(a) == FIELDS
    assert a == {"time": "2026-02-01T23:59:59Z", "request_id": "req_a", "key": "team-a",
                 "session": "s1", "model": "claude-sonnet-4-5",
                 "sap_model": "anthropic--claude-4.5-sonnet", "deployment": "d1", "status": 200,
                 "input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 30,
                 "cache_creation_input_tokens": 0}
    assert b["time"] == "2026-02-02T00:00:00Z" and b["request_id"] == "req_b"
    assert sorted(p.name for p in (tmp_path / "logs").iterdir()) == [day1.name, day2.name]


def test_the_report_glob_matches_the_files(tmp_path):
    target = str(tmp_path / "a[1]" / "token_usage.log")  # glob characters in the directory
    clock = Clock("2026-03-04T10:00:00")
    log = UsageLog(target, clock=clock)
    log.write(rec())
    log.close()
    assert glob.glob(usage_file_pattern(target)) == [target + ".2026-03-04"]
    assert glob.glob(glob.escape(target) + "*") == [target + ".2026-03-04"]


def test_keep_days_deletes_older_dated_files_only(tmp_path):
    target = tmp_path / "token_usage.log"
    for day in ("2026-01-28", "2026-01-29", "2026-01-30", "2026-01-31"):
        Path(f"{target}.{day}").write_text("{}\n")
    (tmp_path / "token_usage.log").write_text("{}\n")  # an undated file from before rotation
    (tmp_path / "other.log.2020-01-01").write_text("{}\n")
    clock = Clock("2026-01-31T08:00:00")
    log = UsageLog(str(target), keep_days=2, clock=clock)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.log.2020-01-01", "token_usage.log", "token_usage.log.2026-01-30",
        "token_usage.log.2026-01-31"]
    clock.now += 86400
    log.write(rec())
    log.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "other.log.2020-01-01", "token_usage.log", "token_usage.log.2026-01-31",
        "token_usage.log.2026-02-01"]


def test_rotation_none_appends_to_the_file_itself(tmp_path):
    target = tmp_path / "usage.log"
    clock = Clock("2026-02-01T23:59:59")
    log = UsageLog(str(target), rotation="none", clock=clock)
    log.write(rec("req_a"))
    clock.now += 3 * 86400
    log.write(rec("req_b"))
    log.close()
    assert [l["request_id"] for l in lines(target)] == ["req_a", "req_b"]
    assert [p.name for p in tmp_path.iterdir()] == ["usage.log"]


def test_stdout_target(capsys):
    setup_usage_log("-")
    try:
        record = rec("req_out")
        record.finish(200)
    finally:
        setup_usage_log("")
    assert json.loads(capsys.readouterr().out)["request_id"] == "req_out"


def test_a_failing_disk_is_reported_once_and_never_raises(tmp_path, caplog):
    log = UsageLog(str(tmp_path / "usage.log"), clock=Clock("2026-02-01T00:00:00"))
    os.close(log._fd)  # the descriptor goes bad under the writer (as on a revoked mount)
    fd_holder = os.open(os.devnull, os.O_RDONLY)  # may take the number back: read-only
    try:
        for _ in range(3):
            log.write(rec())
    finally:
        os.close(fd_holder)
        log._fd = None
    errors = [r for r in caplog.records if "cannot write the usage log" in r.getMessage()]
    assert len(errors) == 1


WRITER = """
import sys
from app.log import RequestRecord, UsageLog
log = UsageLog(sys.argv[1])
for i in range(int(sys.argv[3])):
    r = RequestRecord(f"{sys.argv[2]}-{i}", "POST", "/v1/messages")
    r.usage = {"input_tokens": i, "output_tokens": 1}
    r.session_id = "s" * 300  # long lines make interleaving visible if it happened
    log.write(r)
"""


def test_several_processes_append_whole_lines_to_one_file(tmp_path):
    target = str(tmp_path / "usage.log")
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, target, f"w{n}", "400"], cwd=ROOT)
             for n in range(4)]
    for proc in procs:
        assert proc.wait(timeout=60) == 0
    records = [r for path in sorted(tmp_path.glob("usage.log.*")) for r in lines(path)]
    assert len(records) == 1600
    for n in range(4):
        mine = [r["input_tokens"] for r in records if r["request_id"].startswith(f"w{n}-")]
        assert mine == list(range(400))  # each writer's lines complete and in order


def test_unknown_rotation_is_refused(tmp_path):
    with pytest.raises(ValueError):
        UsageLog(str(tmp_path / "u.log"), rotation="hourly")
