"""OpenAI Responses API: ``POST /v1/responses`` (Codex CLI, ``client.responses.create``).

The Responses body becomes an Anthropic Messages body
(``app/translate/openai/responses_request.py``) and takes the pivot path every family
shares (:func:`app.backends.open_pivot`: Claude through the sanitizer and self-healing,
GPT and Gemini through their translators; failover, budgets, usage log). The answer goes
back as a ``response`` object or, streamed, as Responses events
(``responses_stream.py``) with SSE-comment keep-alives. The gateway keeps no state:
``previous_response_id`` and stored prompts are refused with a 400. Errors are
OpenAI-shaped (``OPENAI_PATHS``).
"""

from __future__ import annotations

import logging
import secrets
import time

from flask import Blueprint, Response, g, request

from app import errors
from app.backends import open_pivot
from app.budget import check_budget
from app.log import RequestRecord
from app.routes import authenticate_request
from app.routes.messages import (affinity_key, note_exchange, read_json_object, resolve_or_404,
                                 whole_message)
from app.runtime import current
from app.streaming import relay, sse_response
from app.translate.openai.responses_request import (ResponsesRequestError,
                                                    translate_responses_request)
from app.translate.openai.responses_response import response_from_message
from app.translate.openai.responses_stream import PING, ResponsesStream
from app.wire.jsoncodec import dumps

log = logging.getLogger(__name__)

bp = Blueprint("responses", __name__)
bp.before_request(authenticate_request)

#: Output maximum when the client sends no ``max_output_tokens`` (Codex never does, and
#: writes whole files); each family's translator lowers it to the model's own ceiling.
DEFAULT_MAX_OUTPUT_TOKENS = 32000


@bp.post("/v1/responses")
def create_response() -> Response:
    record: RequestRecord = g.record
    rt = current()
    check_budget(record.key_label, rt.settings)
    try:
        req = translate_responses_request(read_json_object(),
                                          default_max_tokens=DEFAULT_MAX_OUTPUT_TOKENS)
    except ResponsesRequestError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    record.model = req.model
    record.stream = req.stream
    sap_model = resolve_or_404(rt, req.model)
    record.sap_model = sap_model
    if req.dropped_tools:
        log.info("%s: tools run by OpenAI itself are not available here, dropped: %s",
                 record.request_id, ", ".join(req.dropped_tools))
    call = open_pivot(rt, sap_model, req.body, (), stream=req.stream,
                      client_model=req.model, affinity=affinity_key(req.body))
    exchange = note_exchange(record, call.exchange)
    extra = {"x-gateway-model": sap_model}
    response_id = "resp_" + secrets.token_hex(12)
    created_at = int(time.time())
    if exchange.source is not None:
        translator = call.stream_translator(
            ResponsesStream(req.model, response_id, created_at, req))
        return sse_response(relay(exchange.source, translator, record,
                                  ping_interval=rt.settings.ping_interval,
                                  pending=exchange.pending, ping=PING,
                                  client=request.environ.get("gunicorn.socket")), extra)
    message = whole_message(call, req.model, record)
    answer = response_from_message(message, model=req.model, response_id=response_id,
                                   created_at=created_at, request=req)
    return Response(dumps(answer), mimetype="application/json", headers=extra)

