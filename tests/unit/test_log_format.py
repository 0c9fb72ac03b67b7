"""The per-request line in text and JSON, JSON for the other gateway lines, and no line
(nor its formatting) when its level is off."""

from __future__ import annotations

import io
import json
import logging

import pytest

from app.log import (ACCESS_TEXT, JsonFormatter, RequestRecord, configure_logging,
                     make_formatter, setup_usage_log)

@pytest.fixture
def captured():
    """The gateway's root handler, formatted as configured, into a string buffer."""
    root = logging.getLogger()
    saved_level = root.level
    saved = [h for h in root.handlers if getattr(h, "gateway_handler", False)]
    for h in saved:
        root.removeHandler(h)
    buffer = io.StringIO()

    def use(fmt: str, level: str = "INFO") -> io.StringIO:
        configure_logging(level, fmt)
        handler = next(h for h in root.handlers if getattr(h, "gateway_handler", False))
        handler.setStream(buffer)
        return buffer

    yield use
    for h in [h for h in root.handlers if getattr(h, "gateway_handler", False)]:
        root.removeHandler(h)
    for h in saved:
        root.addHandler(h)
    root.setLevel(saved_level)


def finished_record(**extra) -> RequestRecord:
    rec = RequestRecord("req_abc", "POST", "/v1/messages", "/v1/messages",
                        client_addr="10.1.2.3", user_agent="claude-cli/2.1.3 " + "x" * 500)
    rec.key_label, rec.session_id = "team-a", "sess-1"
    rec.model, rec.sap_model, rec.deployment = "claude-sonnet-4-5", "anthropic--claude-4.5-sonnet", "d1"
    rec.stream = True
    rec.usage = {"input_tokens": 12, "output_tokens": 4, "cache_read_input_tokens": 30,
                 "cache_creation_input_tokens": 2}
    rec.repairs = ["drop:context_management"]
    rec.mark_first_event()
    for name, value in extra.items():
        setattr(rec, name, value)
    rec.finish(200)
    return rec


def finished_record_line(out, **extra) -> str:
    finished_record(**extra)
    return [l for l in out.getvalue().splitlines() if "gateway.access" in l][-1]


def test_text_line_is_the_readable_format(captured):
    out = captured("text")
    finished_record()
    (line,) = [l for l in out.getvalue().splitlines() if "gateway.access" in l]
    assert "INFO gateway.access: req_abc POST /v1/messages 200 key=team-a session=sess-1 " \
           "model=claude-sonnet-4-5 sap_model=anthropic--claude-4.5-sonnet deployment=d1 " \
           "stream=1 in=12 out=4 cache_read=30 cache_write=2 ttfe_ms=" in line
    assert "repairs=drop:context_management" in line
    assert " up_ms=-1.0 " in line  # the record never reached SAP AI Core
    assert " up_ms=412.3 " in finished_record_line(out, upstream_ttfb=0.41234)
    assert "10.1.2.3" not in line  # the text line keeps its historical fields


def test_client_values_cannot_forge_a_second_text_line(captured):
    out = captured("text")
    forged = "x\n2026-12-04T00:00:00+0000 [1] INFO gateway.access: req_fake GET / 200 key=admin"
    finished_record(model=forged, path="/v1/models\nFORGED", session_id="a b\u2028c")
    lines = out.getvalue().splitlines()
    assert len(lines) == 1 and "req_fake" in lines[0] and "key=team-a" in lines[0]
    assert "model=x\\n2026-12-04T00:00:00+0000\\x20[1]" in lines[0]
    assert "POST /v1/models\\nFORGED 200" in lines[0] and "session=a\\x20b\\u2028c" in lines[0]


def test_json_line_has_every_field_plus_client_address_and_agent(captured):
    out = captured("json")
    finished_record()
    lines = [json.loads(l) for l in out.getvalue().splitlines()]
    (line,) = [l for l in lines if l["logger"] == "gateway.access"]
    assert line["level"] == "INFO" and line["message"] == "POST /v1/messages 200"
    assert line["time"].endswith("Z") and isinstance(line["pid"], int)
    expected = {"request_id": "req_abc", "method": "POST", "path": "/v1/messages",
                "route": "/v1/messages", "status": 200, "key": "team-a", "session": "sess-1",
                "model": "claude-sonnet-4-5", "sap_model": "anthropic--claude-4.5-sonnet",
                "deployment": "d1", "stream": True, "input_tokens": 12, "output_tokens": 4,
                "cache_read_input_tokens": 30, "cache_creation_input_tokens": 2,
                "error": "-", "failovers": 0, "repairs": ["drop:context_management"],
                "client_addr": "10.1.2.3"}
    assert {k: line[k] for k in expected} == expected
    assert line["user_agent"].startswith("claude-cli/2.1.3 ") and len(line["user_agent"]) == 200
    assert line["ttfe_ms"] >= 0 and line["duration_ms"] >= line["ttfe_ms"]
    assert line["upstream_ms"] is None  # never reached SAP AI Core
    finished_record(upstream_ttfb=0.41234)
    assert json.loads(out.getvalue().splitlines()[-1])["upstream_ms"] == 412.3


def test_other_lines_and_tracebacks_are_json_too(captured):
    out = captured("json")
    logging.getLogger("app.claude").warning("deployment %s rejected '%s'", "d1", "x")
    try:
        raise ValueError("boom")
    except ValueError:
        logging.getLogger("app.routes").exception("unexpected error on %s", "/v1/messages")
    first, second = [json.loads(l) for l in out.getvalue().splitlines()]
    assert first == {**first, "level": "WARNING", "logger": "app.claude",
                     "message": "deployment d1 rejected 'x'"}
    assert second["level"] == "ERROR" and "ValueError: boom" in second["exc"]


def test_quiet_requests_are_debug_unless_they_fail(captured):
    out = captured("text")
    finished_record(quiet=True)
    assert "gateway.access" not in out.getvalue()
    rec = RequestRecord("req_q", "GET", "/metrics", "/metrics")
    rec.quiet = True
    rec.finish(403)
    assert "req_q GET /metrics 403" in out.getvalue()


def test_nothing_is_built_or_emitted_when_info_is_off(captured, tmp_path):
    out = captured("json", level="WARNING")
    sink = setup_usage_log(str(tmp_path / "usage.log"))
    seen: list[logging.LogRecord] = []
    probe = logging.Handler()
    probe.emit = seen.append  # type: ignore[method-assign]
    access = logging.getLogger("gateway.access")
    chain = [access, logging.getLogger("gateway")]
    saved = [logger.level for logger in chain]
    for logger in chain:  # as in production: the root level (WARNING) decides
        logger.setLevel(logging.NOTSET)
    access.addHandler(probe)
    try:
        finished_record()
    finally:
        access.removeHandler(probe)
        for logger, level in zip(chain, saved):
            logger.setLevel(level)
        setup_usage_log("")
    assert seen == [] and out.getvalue() == ""
    assert json.loads(open(sink.path).read())["request_id"] == "req_abc"  # usage still written


def test_configure_switches_formats_in_place():
    root = logging.getLogger()
    saved_level = root.level
    try:
        configure_logging("INFO", "json")
        handler = next(h for h in root.handlers if getattr(h, "gateway_handler", False))
        assert isinstance(handler.formatter, JsonFormatter)
        configure_logging("INFO", "text")
        assert sum(getattr(h, "gateway_handler", False) for h in root.handlers) == 1
        assert not isinstance(handler.formatter, JsonFormatter)
    finally:
        root.setLevel(saved_level)


def test_text_formatter_formats_access_args_like_before():
    rec = logging.LogRecord("gateway.access", logging.INFO, __file__, 1, ACCESS_TEXT,
                            ("r", "GET", "/p", 200, "k", "-", "-", "-", "-", 0, 0, 0, 0, 0,
                             -1.0, 1.25, -1.0, "-", 0, "-"), None)
    assert make_formatter("text").format(rec).endswith(
        "gateway.access: r GET /p 200 key=k session=- model=- sap_model=- deployment=- "
        "stream=0 in=0 out=0 cache_read=0 cache_write=0 ttfe_ms=-1.0 dur_ms=1.2 up_ms=-1.0 "
        "error=- failovers=0 repairs=-")
