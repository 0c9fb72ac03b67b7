"""One log line per request, written once when the request ends; the usage log; log formats.

:class:`RequestRecord` collects what the request did (client key label, Claude
Code session id, model, deployment, tokens, time to first event, duration,
status, repairs) and :meth:`RequestRecord.finish` records it once: the metrics
(:mod:`app.metrics`), one access line on ``gateway.access`` and one usage line.

* The access line is INFO (DEBUG for quiet routes such as ``/metrics`` scrapes that
  succeed). It is built only if that level is on, and formatted only when a handler
  emits it: readable text by default, one JSON object per line with ``log_format:
  "json"`` (every other gateway log line is then JSON too).
* The usage log is one JSON line per request with usage, appended by
  :class:`UsageLog` straight to a file (one ``write`` with ``O_APPEND``, so the
  workers of one gunicorn never interleave or lose lines), or to stdout on Procfile
  hosts. It bypasses :mod:`logging`: a logger call costs more than the write.

Bodies are logged only at DEBUG. No secret is ever passed to a logger here: keys
appear as labels, tokens not at all.
"""

from __future__ import annotations

import glob
import logging
import os
import sys
import time
from typing import Any, Callable

from app import budget, metrics
from app.wire.jsoncodec import dumps, dumps_str

log = logging.getLogger("gateway.access")
_log = logging.getLogger(__name__)
# Usage lines bypass logging (UsageLog below); the logger keeps its name and stays out
# of the access log for anything that still logs usage through it.
usage_log = logging.getLogger("gateway.usage")
usage_log.propagate = False

ACCESS_TEXT = ("%s %s %s %s key=%s session=%s model=%s sap_model=%s deployment=%s stream=%s "
               "in=%s out=%s cache_read=%s cache_write=%s ttfe_ms=%.1f dur_ms=%.1f up_ms=%.1f "
               "error=%s failovers=%s repairs=%s")
USER_AGENT_MAX = 200


def _token(value: Any) -> Any:
    """A client-supplied value as one token of the text line: control characters (a forged
    second line), spaces and other unprintables escaped; printable text as it is."""
    if isinstance(value, str) and (not value.isprintable() or " " in value):
        return value.encode("unicode_escape").decode("ascii").replace(" ", "\\x20")
    return value


class RequestRecord:
    __slots__ = ("request_id", "method", "path", "route", "started", "ended", "key_label",
                 "session_id", "model", "sap_model", "deployment", "stream", "status", "usage",
                 "first_event_at", "upstream_ttfb", "repairs", "error_type", "failovers",
                 "client_addr", "user_agent", "in_flight", "quiet", "_done")

    def __init__(self, request_id: str, method: str, path: str, route: str = "-",
                 client_addr: str | None = None, user_agent: str | None = None) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.route = route  # the URL rule ("/v1/models/<model_id>"), a bounded metric label
        self.started = time.perf_counter()
        self.ended = self.started
        self.key_label = "-"
        self.session_id = "-"
        self.model = "-"
        self.sap_model = "-"
        self.deployment = "-"
        self.stream = False
        self.status = 0
        self.usage: dict | None = None
        self.first_event_at: float | None = None
        # seconds from sending the successful upstream call to its first event / answer
        self.upstream_ttfb: float | None = None
        self.repairs: list[str] = []
        self.error_type = "-"
        self.failovers = 0
        self.client_addr = client_addr
        self.user_agent = user_agent
        self.in_flight = False  # counted in gateway_streams_in_flight until finish()
        self.quiet = False  # a successful request of this route is logged at DEBUG only
        self._done = False

    @property
    def finished(self) -> bool:
        return self._done

    def mark_first_event(self) -> None:
        if self.first_event_at is None:
            self.first_event_at = time.perf_counter()

    def finish(self, status: int | None = None) -> None:
        """Record the request (once; later calls do nothing)."""
        if self._done:
            return
        self._done = True
        if status is not None:
            self.status = status
        self.ended = time.perf_counter()
        metrics.record_request(self)
        level = logging.DEBUG if self.quiet and self.status < 400 else logging.INFO
        if log.isEnabledFor(level):
            usage = self.usage or {}
            log.log(level, ACCESS_TEXT,
                    self.request_id, self.method, _token(self.path), self.status, self.key_label,
                    _token(self.session_id), _token(self.model), self.sap_model, self.deployment,
                    int(self.stream), usage.get("input_tokens", 0), usage.get("output_tokens", 0),
                    usage.get("cache_read_input_tokens", 0),
                    usage.get("cache_creation_input_tokens", 0), self.ttfe_ms(),
                    (self.ended - self.started) * 1000, self.upstream_ms(), self.error_type,
                    self.failovers,
                    ",".join(self.repairs) or "-", extra={"gateway_request": self})
        sink = _usage_sink
        if sink is not None and self.usage is not None:
            sink.write(self)
        if self.usage:
            budget.record_usage(self.key_label, self.usage)

    def ttfe_ms(self) -> float:
        return (self.first_event_at - self.started) * 1000 if self.first_event_at else -1.0

    def upstream_ms(self) -> float:
        """SAP AI Core's own part: sending the call to its first event (or answer), in ms;
        -1.0 for a request that got no upstream answer."""
        return self.upstream_ttfb * 1000 if self.upstream_ttfb is not None else -1.0

    def fields(self) -> dict[str, Any]:
        """The access line's fields for JSON logs (built only when such a line is emitted)."""
        usage = self.usage or {}
        return {
            "request_id": self.request_id, "method": self.method, "path": self.path,
            "route": self.route, "status": self.status, "key": self.key_label,
            "session": self.session_id, "model": self.model, "sap_model": self.sap_model,
            "deployment": self.deployment, "stream": self.stream,
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            "ttfe_ms": round(self.ttfe_ms(), 1),
            "duration_ms": round((self.ended - self.started) * 1000, 1),
            "upstream_ms": round(self.upstream_ttfb * 1000, 1)
            if self.upstream_ttfb is not None else None,
            "error": self.error_type, "failovers": self.failovers,
            "repairs": list(self.repairs), "client_addr": self.client_addr,
            "user_agent": (self.user_agent or "")[:USER_AGENT_MAX] or None,
        }


# --------------------------------------------------------------------------- formats

LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S%z"
LOG_FORMATS = ("text", "json")


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time (UTC), level, logger, pid, message; for access
    lines also every :meth:`RequestRecord.fields`; ``exc`` holds a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        request = record.__dict__.get("gateway_request")
        out: dict[str, Any] = {
            "time": time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(record.created))
            + ".%03dZ" % record.msecs,
            "level": record.levelname, "logger": record.name, "pid": record.process,
        }
        if request is not None:
            out["message"] = f"{request.method} {request.path} {request.status}"
            out.update(request.fields())
        else:
            out["message"] = record.getMessage()
        if record.exc_info:
            out["exc"] = self.formatException(record.exc_info)
        if record.stack_info:
            out["stack"] = self.formatStack(record.stack_info)
        return dumps_str(out)


def make_formatter(fmt: str) -> logging.Formatter:
    if fmt == "json":
        return JsonFormatter()
    return logging.Formatter(LOG_FORMAT, LOG_DATEFMT)


def configure_logging(level: str, fmt: str = "text") -> None:
    """Send the app's loggers to stderr, as text or JSON lines, once per worker."""
    root = logging.getLogger()
    handler = next((h for h in root.handlers if getattr(h, "gateway_handler", False)), None)
    if handler is None:
        handler = logging.StreamHandler(sys.stderr)
        handler.gateway_handler = True  # type: ignore[attr-defined]
        root.addHandler(handler)
    if getattr(handler, "gateway_format", None) != fmt:
        handler.setFormatter(make_formatter(fmt))
        handler.gateway_format = fmt  # type: ignore[attr-defined]
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


# --------------------------------------------------------------------------- usage log

DAY = 86400
ROTATIONS = ("daily", "none")


def usage_file_pattern(target: str) -> str:
    """The glob of the dated usage files of ``target`` (``logs/token_usage.log`` ->
    ``logs/token_usage.log.????-??-??``). ``target + "*"`` matches them and the
    undated ``target`` of ``rotation: "none"`` (what ``python -m app.usage`` reads)."""
    return glob.escape(target) + ".????-??-??"


def usage_file_for(target: str, day: str) -> str:
    return f"{target}.{day}"


class _UsageLines:
    """The usage line of a request: the fields ``python -m app.usage`` reads (keep them)."""

    def __init__(self, clock: Callable[[], float]) -> None:
        self._clock = clock
        self._stamp_second = -1
        self._stamp = ""

    def line(self, rec: RequestRecord, now: float) -> bytes:
        second = int(now)
        if second != self._stamp_second:
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
            self._stamp_second = second
        usage = rec.usage or {}
        return dumps({
            "time": self._stamp, "request_id": rec.request_id, "key": rec.key_label,
            "session": rec.session_id, "model": rec.model, "sap_model": rec.sap_model,
            "deployment": rec.deployment, "status": rec.status,
            "input_tokens": usage.get("input_tokens", 0),
            "output_tokens": usage.get("output_tokens", 0),
            "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
            "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
        }) + b"\n"

    def write(self, rec: RequestRecord) -> None:
        raise NotImplementedError

    def close(self) -> None:
        pass


class UsageLog(_UsageLines):
    """Appends one JSON line per request to the usage log file.

    With ``rotation="daily"`` (the default) lines go to ``<target>.<UTC date>``
    (``logs/token_usage.log.2026-02-02``). Every worker opens that file itself with
    ``O_APPEND`` and writes each line with one ``os.write``: appends from several
    processes never interleave or overwrite each other (local filesystems; not NFS),
    and the day's name is computed by each worker from the clock, so no process ever
    renames a file another one still writes (what makes ``RotatingFileHandler``
    unsafe with several workers). The hot path compares the time with the next UTC
    midnight; only then is a new file opened and, with ``keep_days``, dated files
    older than that many days (today included) are deleted (by whichever worker gets
    there first). ``rotation="none"`` appends to ``target`` itself forever.
    """

    def __init__(self, target: str, rotation: str = "daily", keep_days: int = 0,
                 clock: Callable[[], float] = time.time) -> None:
        if rotation not in ROTATIONS:
            raise ValueError(f"rotation must be one of {ROTATIONS}")
        self.target = target
        self.rotation = rotation
        self.keep_days = keep_days
        super().__init__(clock)
        self._fd: int | None = None
        self.path = ""
        self._next_switch = 0.0
        self._failed = False
        directory = os.path.dirname(target)
        if directory:
            os.makedirs(directory, exist_ok=True)
        self._switch(clock())

    def _switch(self, now: float) -> None:
        if self.rotation == "none":
            path, self._next_switch = self.target, float("inf")
        else:
            path = usage_file_for(self.target, time.strftime("%Y-%m-%d", time.gmtime(now)))
            self._next_switch = (int(now) // DAY + 1) * DAY
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
        self.close()
        self._fd, self.path = fd, path
        if self.rotation == "daily" and self.keep_days > 0:
            self._prune(now)

    def _prune(self, now: float) -> None:
        oldest = time.strftime("%Y-%m-%d",
                               time.gmtime((int(now) // DAY - self.keep_days + 1) * DAY))
        for path in glob.glob(usage_file_pattern(self.target)):
            if path[-10:] < oldest:
                try:
                    os.remove(path)
                except FileNotFoundError:
                    pass  # another worker was first

    def write(self, rec: RequestRecord) -> None:
        now = self._clock()
        try:
            if now >= self._next_switch:
                self._switch(now)
            os.write(self._fd, self.line(rec, now))  # type: ignore[arg-type]
        except OSError as exc:
            if not self._failed:  # say it once, not once per request
                self._failed = True
                _log.error("cannot write the usage log %s: %s", self.path or self.target,
                           exc.strerror)
            return
        self._failed = False

    def close(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None


class StdoutUsageLog(_UsageLines):
    """The usage lines on stdout (``token_usage_log: "-"``, Procfile hosts)."""

    target = path = "-"

    def __init__(self, clock: Callable[[], float] = time.time) -> None:
        super().__init__(clock)

    def write(self, rec: RequestRecord) -> None:
        out = sys.stdout
        out.write(self.line(rec, self._clock()).decode("utf-8"))
        out.flush()


_usage_sink: _UsageLines | None = None


def setup_usage_log(target: str, rotation: str = "daily",
                    keep_days: int = 0) -> _UsageLines | None:
    """Point the usage log at a file (parents created) or stdout (``-``); ``""`` turns it
    off. Once per worker."""
    global _usage_sink
    old, _usage_sink = _usage_sink, None
    if old is not None:
        old.close()
    if not target:
        return None
    _usage_sink = StdoutUsageLog() if target == "-" else UsageLog(target, rotation, keep_days)
    return _usage_sink
