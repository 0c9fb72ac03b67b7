"""OpenAI chat completions for Claude deployments: ``POST /v1/chat/completions``.

The OpenAI body is translated to an Anthropic Messages body
(``app/translate/openai/chat_request.py``) and then takes exactly the path of
``/v1/messages``: budget check, model-name resolution, :func:`app.claude.open_claude`
(sanitizer, failover, self-healing, re-authentication). Answers go back as a
``chat.completion`` or, with ``stream: true``, as ``chat.completion.chunk`` events
relayed with SSE-comment keep-alives. Errors leave through the one renderer in
OpenAI's shape (``OPENAI_PATHS`` in ``app/routes/__init__.py``).
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from flask import Blueprint, Response, g

from app import errors
from app.budget import check_budget
from app.claude import open_claude
from app.log import RequestRecord
from app.model_names import family_of
from app.routes import authenticate_request
from app.routes.messages import affinity_key, read_json_object, resolve_or_404
from app.runtime import current
from app.streaming import relay, sse_response
from app.translate.bedrock_stream import message_from_bedrock, usage_from_message
from app.translate.openai.chat_request import ChatRequestError, translate_request
from app.translate.openai.chat_response import completion_from_message
from app.translate.openai.chat_stream import PING, ChatCompletionStream
from app.translate.sanitize import SanitizeError
from app.wire.jsoncodec import dumps

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__)
bp.before_request(authenticate_request)


@bp.post("/v1/chat/completions")
def create_chat_completion() -> Response:
    record: RequestRecord = g.record
    rt = current()
    check_budget(record.key_label, rt.settings)
    try:
        chat = translate_request(read_json_object())
    except ChatRequestError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    record.stream = chat.stream
    record.model = chat.model
    sap_model = resolve_or_404(rt, chat.model)
    record.sap_model = sap_model
    if family_of(sap_model) != "claude":
        raise errors.InvalidRequest(
            f"model {chat.model} ({sap_model}) is not a Claude model; this gateway serves "
            "/v1/chat/completions for Claude deployments only for now")
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s translated body: %s; ignored fields: %s", record.request_id,
                  json.dumps(chat.body)[:100_000], ", ".join(chat.ignored) or "none")
    try:
        exchange = open_claude(rt, sap_model, chat.body, (), stream=chat.stream,
                               client_model=chat.model, affinity=affinity_key(chat.body))
    except SanitizeError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    record.deployment = exchange.target.deployment_id
    record.repairs = exchange.repairs
    record.failovers = exchange.failovers
    extra = {"x-gateway-model": sap_model}
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    if exchange.source is not None:
        translator = ChatCompletionStream(model=chat.model, completion_id=completion_id,
                                          created=created, include_usage=chat.include_usage)
        return sse_response(relay(exchange.source, translator, record,
                                  ping_interval=rt.settings.ping_interval,
                                  pending=exchange.pending, ping=PING), extra)
    message = _whole_message(exchange.response, chat.model)
    record.usage = usage_from_message(message)
    record.mark_first_event()
    completion = completion_from_message(message, model=chat.model,
                                         completion_id=completion_id, created=created)
    return Response(dumps(completion), mimetype="application/json", headers=extra)


def _whole_message(upstream, client_model: str) -> dict:
    """The non-streaming ``/invoke`` answer as an Anthropic message for the client."""
    try:
        raw = upstream.content
    finally:
        upstream.close()
    try:
        body = json.loads(raw)
    except ValueError:
        body = None
    if not isinstance(body, dict):
        raise errors.BadGateway("SAP AI Core sent an unreadable response")
    return message_from_bedrock(body, model=client_model)
