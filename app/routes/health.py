"""Liveness and the no-op endpoints Claude Code may call: no auth, no upstream call."""

from __future__ import annotations

from flask import Blueprint, Response

bp = Blueprint("health", __name__)

_OK = b'{"status":"ok"}'


@bp.route("/health", methods=["GET", "HEAD"])
@bp.route("/", methods=["GET", "HEAD"])
@bp.route("/api/hello", methods=["GET", "HEAD"])
def health() -> Response:
    return Response(_OK, mimetype="application/json")


@bp.post("/api/event_logging/batch")
def event_logging() -> Response:
    """Claude Code 2.0.x telemetry: accepted and dropped, never forwarded."""
    return Response(b"{}", mimetype="application/json")
