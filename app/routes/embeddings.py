"""OpenAI embeddings: ``POST /v1/embeddings`` for Azure embeddings deployments.

The body is checked for the shapes OpenAI accepts (``input`` a string, a list of
strings, a list of token ids or a list of such lists; ``encoding_format`` ``float`` or
``base64``; ``dimensions`` a positive integer) and forwarded to
``{deployment}/embeddings?api-version=…`` through the same failover loop as chat. The
answer is passed on with the client's model id; its ``usage`` (prompt tokens) is what the
usage log and budgets count. Errors are OpenAI-shaped (``OPENAI_PATHS``).
"""

from __future__ import annotations

from typing import Any

from flask import Blueprint, Response, g

from app import errors
from app.backends import StaticPlan
from app.budget import check_budget
from app.forwarding import open_exchange, read_json
from app.log import RequestRecord
from app.model_names import family_of
from app.routes import authenticate_request
from app.routes.messages import model_field, note_exchange, read_json_object, resolve_or_404
from app.runtime import current
from app.translate.gpt.request import api_path
from app.wire.jsoncodec import dumps

bp = Blueprint("embeddings", __name__)
bp.before_request(authenticate_request)

#: Fields OpenAI's embeddings API defines; others are not forwarded.
FIELDS = ("input", "encoding_format", "dimensions", "user")
MAX_INPUTS = 2048  # OpenAI's limit of inputs per request


@bp.post("/v1/embeddings")
def create_embeddings() -> Response:
    record: RequestRecord = g.record
    rt = current()
    check_budget(record.key_label, rt.settings)
    raw = read_json_object()
    model = record.model = model_field(raw)
    validate_embeddings_body(raw)
    sap_model = resolve_or_404(rt, model)
    record.sap_model = sap_model
    if family_of(sap_model) != "gpt" or "embedding" not in sap_model:
        raise errors.InvalidRequest(f"model {model} ({sap_model}) is not an embeddings model")
    body = {key: raw[key] for key in FIELDS if raw.get(key) is not None}
    plan = StaticPlan(api_path(rt.gpt_profile(sap_model), embeddings=True), dumps(body))
    exchange = note_exchange(record, open_exchange(rt, sap_model, plan, stream=False,
                                                   client_model=model))
    answer = read_json(exchange.response)
    answer["model"] = model
    usage = answer.get("usage") if isinstance(answer.get("usage"), dict) else {}
    prompt_tokens = usage.get("prompt_tokens")
    record.usage = {"input_tokens": prompt_tokens if isinstance(prompt_tokens, int) else 0,
                    "output_tokens": 0}
    record.mark_first_event()
    return Response(dumps(answer), mimetype="application/json",
                    headers={"x-gateway-model": sap_model})


def validate_embeddings_body(raw: dict[str, Any]) -> None:
    value = raw.get("input")
    if not _valid_input(value):
        raise errors.InvalidRequest(
            "input: field required (a non-empty string, a list of strings, a list of token "
            f"ids or a list of token-id lists, at most {MAX_INPUTS} items)")
    fmt = raw.get("encoding_format")
    if fmt is not None and fmt not in ("float", "base64"):
        raise errors.InvalidRequest("encoding_format: must be 'float' or 'base64'")
    dims = raw.get("dimensions")
    if dims is not None and (isinstance(dims, bool) or not isinstance(dims, int) or dims < 1):
        raise errors.InvalidRequest("dimensions: must be a positive integer")
    user = raw.get("user")
    if user is not None and not isinstance(user, str):
        raise errors.InvalidRequest("user: must be a string")


def _valid_input(value: Any) -> bool:
    if isinstance(value, str):
        return bool(value)
    if not isinstance(value, list) or not value or len(value) > MAX_INPUTS:
        return False
    if all(isinstance(v, str) and v for v in value):
        return True
    if all(_is_token(v) for v in value):
        return True
    return all(isinstance(v, list) and v and all(_is_token(t) for t in v) for v in value)


def _is_token(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0
