"""One log line per request, written once when the request ends, and the usage log.

:class:`RequestRecord` collects what the request did (client key label, Claude
Code session id, model, deployment, tokens, time to first event, duration,
status, repairs) and :meth:`RequestRecord.finish` writes one INFO line with
``%``-style arguments, so nothing is formatted when INFO is off. Token usage also
goes to the ``gateway.usage`` logger as one JSON line per request (a file, or
stdout on Procfile hosts). Bodies are logged only at DEBUG. No secret is ever
passed to a logger here: keys appear as labels, tokens not at all.
"""

from __future__ import annotations

import json
import logging
import os
import sys
import time

log = logging.getLogger("gateway.access")
usage_log = logging.getLogger("gateway.usage")
usage_log.propagate = False


class RequestRecord:
    __slots__ = ("request_id", "method", "path", "started", "key_label", "session_id",
                 "model", "sap_model", "deployment", "stream", "status", "usage",
                 "first_event_at", "repairs", "error_type", "failovers", "_done")

    def __init__(self, request_id: str, method: str, path: str) -> None:
        self.request_id = request_id
        self.method = method
        self.path = path
        self.started = time.perf_counter()
        self.key_label = "-"
        self.session_id = "-"
        self.model = "-"
        self.sap_model = "-"
        self.deployment = "-"
        self.stream = False
        self.status = 0
        self.usage: dict | None = None
        self.first_event_at: float | None = None
        self.repairs: list[str] = []
        self.error_type = "-"
        self.failovers = 0
        self._done = False

    def mark_first_event(self) -> None:
        if self.first_event_at is None:
            self.first_event_at = time.perf_counter()

    def finish(self, status: int | None = None) -> None:
        """Write the request's line (once; later calls do nothing)."""
        if self._done:
            return
        self._done = True
        if status is not None:
            self.status = status
        now = time.perf_counter()
        usage = self.usage or {}
        ttfe = (self.first_event_at - self.started) * 1000 if self.first_event_at else -1.0
        log.info(
            "%s %s %s %s key=%s session=%s model=%s sap_model=%s deployment=%s stream=%s "
            "in=%s out=%s cache_read=%s cache_write=%s ttfe_ms=%.1f dur_ms=%.1f error=%s "
            "failovers=%s repairs=%s",
            self.request_id, self.method, self.path, self.status, self.key_label,
            self.session_id, self.model, self.sap_model, self.deployment, int(self.stream),
            usage.get("input_tokens", 0), usage.get("output_tokens", 0),
            usage.get("cache_read_input_tokens", 0), usage.get("cache_creation_input_tokens", 0),
            ttfe, (now - self.started) * 1000, self.error_type, self.failovers,
            ",".join(self.repairs) or "-",
        )
        if self.usage is not None and usage_log.handlers:
            usage_log.info("%s", json.dumps({
                "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                "request_id": self.request_id, "key": self.key_label,
                "session": self.session_id, "model": self.model, "sap_model": self.sap_model,
                "deployment": self.deployment, "status": self.status,
                "input_tokens": usage.get("input_tokens", 0),
                "output_tokens": usage.get("output_tokens", 0),
                "cache_read_input_tokens": usage.get("cache_read_input_tokens", 0),
                "cache_creation_input_tokens": usage.get("cache_creation_input_tokens", 0),
            }, separators=(",", ":")))


LOG_FORMAT = "%(asctime)s [%(process)d] %(levelname)s %(name)s: %(message)s"
LOG_DATEFMT = "%Y-%m-%dT%H:%M:%S%z"


def configure_logging(level: str) -> None:
    """Send the app's loggers to stderr in gunicorn's style, once per worker."""
    root = logging.getLogger()
    if not any(getattr(h, "gateway_handler", False) for h in root.handlers):
        handler = logging.StreamHandler(sys.stderr)
        handler.gateway_handler = True  # type: ignore[attr-defined]
        handler.setFormatter(logging.Formatter(LOG_FORMAT, LOG_DATEFMT))
        root.addHandler(handler)
    root.setLevel(level)
    logging.getLogger("urllib3").setLevel(logging.WARNING)


def setup_usage_log(target: str) -> logging.Handler | None:
    """Point ``gateway.usage`` at a file (parents created) or stdout (``-``). Once per worker."""
    for old in list(usage_log.handlers):
        usage_log.removeHandler(old)
        old.close()
    if not target:
        return None
    if target == "-":
        handler: logging.Handler = logging.StreamHandler(sys.stdout)
    else:
        directory = os.path.dirname(target)
        if directory:
            os.makedirs(directory, exist_ok=True)
        handler = logging.FileHandler(target, encoding="utf-8")
    handler.setFormatter(logging.Formatter("%(message)s"))
    usage_log.addHandler(handler)
    usage_log.setLevel(logging.INFO)
    return handler
