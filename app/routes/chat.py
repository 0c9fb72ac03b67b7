"""OpenAI chat completions for every chat model: ``POST /v1/chat/completions``.

* GPT deployments get the OpenAI body itself, fixed only where Azure rejects it
  (``app/translate/gpt/request.prepare_chat``), and their chunks are relayed nearly as
  they come (``passthrough.py``: the client's model id, one ``[DONE]``, usage only when
  asked).
* Claude and Gemini deployments: the body is translated to an Anthropic Messages body
  (``app/translate/openai/chat_request.py``) and takes the path of ``/v1/messages``
  (:func:`app.backends.open_pivot`: sanitizer, failover, self-healing,
  re-authentication); the answer comes back as a ``chat.completion`` or as
  ``chat.completion.chunk`` events.

Both paths share the budget check, model-name resolution, the failover loop and the
relay with SSE-comment keep-alives. Errors leave through the one renderer in OpenAI's
shape (``OPENAI_PATHS`` in ``app/routes/__init__.py``).
"""

from __future__ import annotations

import json
import logging
import secrets
import time

from flask import Blueprint, Response, g, request

from app import errors
from app.budget import check_budget
from app.backends import StaticPlan, chat_family, open_pivot
from app.forwarding import open_exchange, read_json
from app.log import RequestRecord
from app.routes import authenticate_request
from app.routes.messages import (affinity_key, model_field, note_exchange, read_json_object,
                                 resolve_or_404, whole_message)
from app.runtime import Runtime, current
from app.streaming import relay, sse_response
from app.translate.gpt.passthrough import ChatPassthroughStream, completion_for_client
from app.translate.gpt.request import GptRequestError, api_path, prepare_chat
from app.translate.openai.chat_request import ChatRequestError, translate_request
from app.translate.openai.chat_response import completion_from_message
from app.translate.openai.chat_stream import PING, ChatCompletionStream
from app.wire.jsoncodec import dumps

log = logging.getLogger(__name__)

bp = Blueprint("chat", __name__)
bp.before_request(authenticate_request)


@bp.post("/v1/chat/completions")
def create_chat_completion() -> Response:
    record: RequestRecord = g.record
    rt = current()
    check_budget(record.key_label, rt.settings)
    raw = read_json_object()
    model = record.model = model_field(raw)
    sap_model = resolve_or_404(rt, model)
    record.sap_model = sap_model
    if chat_family(sap_model, model) == "gpt":
        return _gpt_chat(rt, record, raw, sap_model)
    try:
        chat = translate_request(raw)
    except ChatRequestError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    record.stream = chat.stream
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s translated body: %s; ignored fields: %s", record.request_id,
                  json.dumps(chat.body)[:100_000], ", ".join(chat.ignored) or "none")
    call = open_pivot(rt, sap_model, chat.body, (), stream=chat.stream,
                      client_model=chat.model, affinity=affinity_key(chat.body))
    exchange = note_exchange(record, call.exchange)
    extra = {"x-gateway-model": sap_model}
    completion_id = "chatcmpl-" + secrets.token_hex(12)
    created = int(time.time())
    if exchange.source is not None:
        translator = call.stream_translator(ChatCompletionStream(
            model=chat.model, completion_id=completion_id, created=created,
            include_usage=chat.include_usage))
        return sse_response(relay(exchange.source, translator, record,
                                  ping_interval=rt.settings.ping_interval,
                                  pending=exchange.pending, ping=PING,
                                  client=request.environ.get("gunicorn.socket")), extra)
    message = whole_message(call, chat.model, record)
    completion = completion_from_message(message, model=chat.model,
                                         completion_id=completion_id, created=created)
    return Response(dumps(completion), mimetype="application/json", headers=extra)


def _gpt_chat(rt: Runtime, record: RequestRecord, raw: dict, sap_model: str) -> Response:
    """A GPT deployment serves the OpenAI body itself: only what Azure rejects is fixed."""
    messages = raw.get("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.InvalidRequest("messages: field required (a non-empty list)")
    if "stream" in raw and not isinstance(raw["stream"], bool):
        raise errors.InvalidRequest("stream: must be a boolean")
    stream = raw.get("stream") is True
    record.stream = stream
    profile = rt.gpt_profile(sap_model)
    try:
        body, include_usage = prepare_chat(raw, profile=profile)
    except GptRequestError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    client_model = raw["model"]
    plan = StaticPlan(api_path(profile), dumps(body))
    exchange = note_exchange(record, open_exchange(rt, sap_model, plan, stream=stream,
                                                   client_model=client_model,
                                                   affinity=_chat_affinity(raw)))
    extra = {"x-gateway-model": sap_model}
    if exchange.source is not None:
        translator = ChatPassthroughStream(model=client_model, include_usage=include_usage)
        return sse_response(relay(exchange.source, translator, record,
                                  ping_interval=rt.settings.ping_interval,
                                  pending=exchange.pending, ping=PING,
                                  client=request.environ.get("gunicorn.socket")), extra)
    completion, usage = completion_for_client(read_json(exchange.response), model=client_model)
    record.usage = usage
    record.mark_first_event()
    return Response(dumps(completion), mimetype="application/json", headers=extra)


def _chat_affinity(raw: dict) -> str | None:
    """The conversation's first message (usually the system prompt) keeps it on one
    deployment, so Azure's prompt cache stays warm."""
    user = raw.get("user")
    if isinstance(user, str) and user:
        return user
    first = raw["messages"][0]
    content = first.get("content") if isinstance(first, dict) else None
    return content[:2048] if isinstance(content, str) and content else None
