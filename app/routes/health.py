"""Liveness, readiness and the no-op endpoints Claude Code may call; none needs a client key.

``/health`` is liveness only: no upstream call, no state. ``/ready`` says whether this
worker can serve (``app/readiness.py``): 200 or 503 with a JSON report of what is
missing, never a secret.
"""

from __future__ import annotations

import json

from flask import Blueprint, Response

from app.config import ConfigError
from app.readiness import readiness
from app.runtime import current

bp = Blueprint("health", __name__)

_OK = b'{"status":"ok"}'


@bp.route("/health", methods=["GET", "HEAD"])
@bp.route("/", methods=["GET", "HEAD"])
@bp.route("/api/hello", methods=["GET", "HEAD"])
def health() -> Response:
    return Response(_OK, mimetype="application/json")


@bp.route("/ready", methods=["GET", "HEAD"])
def ready() -> Response:
    try:
        ok, report = readiness(current())
    except ConfigError as exc:
        ok, report = False, {"status": "not ready", "models": {},
                             "problems": [{"problem": "config", "detail": str(exc)}]}
    return Response(json.dumps(report), status=200 if ok else 503,
                    mimetype="application/json", headers={"Cache-Control": "no-store"})


@bp.post("/api/event_logging/batch")
def event_logging() -> Response:
    """Claude Code 2.0.x telemetry: accepted and dropped, never forwarded."""
    return Response(b"{}", mimetype="application/json")
