"""Blueprint registration, request bookkeeping and the one error renderer.

Every request gets a request id, returned in ``request-id`` and ``x-request-id``:
the client's own ``X-Request-Id`` when it is a short safe token (at most 64 of
``[A-Za-z0-9._-]``, and not one of the client keys), else a new ``req_…``. Its
:class:`RequestRecord` is finished once, by ``call_on_close``: when the server closes
the response after its last byte (or without iterating it at all), so the access line,
usage line and metrics are off the client's path. A stream is counted in
``gateway_streams_in_flight`` until then. API blueprints
authenticate in ``before_request``. Every error, ours or Werkzeug's, leaves through
:func:`_render_error` as JSON in the caller's dialect: OpenAI routes get OpenAI
error bodies, everything else Anthropic ones.
"""

from __future__ import annotations

import logging
import re
import secrets

from flask import Flask, Response, g, request
from werkzeug.exceptions import HTTPException

from app import errors
from app import metrics as gateway_metrics
from app.client_auth import authenticate
from app.config import key_digest
from app.log import RequestRecord
from app.runtime import current

log = logging.getLogger(__name__)

OPENAI_PATHS = ("/v1/chat/completions", "/v1/embeddings", "/v1/responses")
_SAFE_REQUEST_ID = re.compile(r"[A-Za-z0-9._-]{1,64}").fullmatch


def register(app: Flask) -> None:
    from app.routes import (chat, embeddings, health, messages, metrics as metrics_route, models,
                            responses)

    for bp in (health.bp, messages.bp, chat.bp, embeddings.bp, responses.bp, models.bp,
               metrics_route.bp):
        app.register_blueprint(bp)
    app.before_request(_start_record)
    app.after_request(_finish_record)
    app.register_error_handler(errors.GatewayError, _render_error)
    app.register_error_handler(HTTPException, _render_http_exception)
    app.register_error_handler(Exception, _render_unexpected)


def dialect() -> str:
    return errors.OPENAI if request.path.startswith(OPENAI_PATHS) else errors.ANTHROPIC


def _start_record() -> None:
    environ = request.environ
    rule = request.url_rule
    g.record = RequestRecord(request_id(environ.get("HTTP_X_REQUEST_ID")), request.method,
                             request.path, rule.rule if rule is not None else "unmatched",
                             request.remote_addr, environ.get("HTTP_USER_AGENT"))


def request_id(incoming: str | None) -> str:
    """The client's ``X-Request-Id`` if it is a safe short token, else a new one. A client
    key sent there by mistake is not echoed (it would end up in every log line)."""
    if incoming and _SAFE_REQUEST_ID(incoming) and \
            key_digest(incoming) not in current().settings.client_key_digests:
        return incoming
    return "req_" + secrets.token_hex(12)


def authenticate_request() -> None:
    """``before_request`` of every API blueprint: no view can forget it."""
    settings = current().settings
    g.record.key_label = authenticate(request.headers, settings.client_key_digests,
                                      settings.allow_unauthenticated)
    session = request.headers.get("X-Claude-Code-Session-Id")
    if session:
        g.record.session_id = session[:64]


def _finish_record(response: Response) -> Response:
    record: RequestRecord | None = g.get("record")
    if record is not None:
        response.headers["request-id"] = record.request_id
        response.headers["x-request-id"] = record.request_id
        if record.repairs:
            response.headers["x-gateway-repairs"] = ",".join(record.repairs)
        if not record.finished:
            record.status = response.status_code
            if response.is_streamed and not record.in_flight:
                record.in_flight = True
                gateway_metrics.stream_started()
            response.call_on_close(record.finish)  # after the server wrote the last byte
    return response


def _render_error(error: errors.GatewayError) -> Response:
    record: RequestRecord | None = g.get("record")
    request_id = record.request_id if record else "req_" + secrets.token_hex(12)
    if record is not None:
        record.error_type = error.anthropic_type
    body, status, headers = errors.render(error, dialect(), request_id)
    return Response(body, status=status, headers=headers, mimetype="application/json")


def _render_http_exception(exc: HTTPException) -> Response:
    status = exc.code or 500
    if status == 404:
        error: errors.GatewayError = errors.NotFound(
            f"no route for {request.method} {request.path}")
    elif status == 413:
        error = errors.RequestTooLarge("request body too large")
    elif status == 405:
        error = errors.InvalidRequest(f"method {request.method} not allowed on {request.path}",
                                      status=405)
    elif status < 500:
        error = errors.InvalidRequest(exc.description or "bad request", status=status)
    else:
        error = errors.UpstreamFailure("internal gateway error", status=status)
    return _render_error(error)


def _render_unexpected(exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.path)
    return _render_error(errors.UpstreamFailure("internal gateway error"))
