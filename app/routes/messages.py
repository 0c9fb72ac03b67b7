"""Anthropic Messages API: ``POST /v1/messages`` and ``POST /v1/messages/count_tokens``.

Views parse, call plain functions and return. Streaming answers are committed
only after SAP AI Core answered 200; earlier failures become real HTTP errors.
"""

from __future__ import annotations

import json
import logging
from typing import Any

from flask import Blueprint, Response, g, request

from app import errors
from app.routes import authenticate_request
from app.budget import check_budget
from app.backends import PivotCall, open_pivot
from app.forwarding import Exchange, read_json
from app.log import RequestRecord
from app.model_names import family_of
from app.runtime import Runtime, current
from app.streaming import sse_response, relay
from app.translate.bedrock_stream import BedrockToAnthropicStream, message_from_bedrock, \
    usage_from_message
from app.translate.token_count import estimate_input_tokens
from app.wire.jsoncodec import dumps, loads

log = logging.getLogger(__name__)

bp = Blueprint("messages", __name__)
bp.before_request(authenticate_request)


@bp.post("/v1/messages")
def create_message() -> Response:
    record: RequestRecord = g.record
    rt = current()
    check_budget(record.key_label, rt.settings)
    body = read_json_object()
    validate_messages_body(body)
    stream = body.get("stream") is True
    record.stream = stream
    record.model = body["model"]
    sap_model = resolve_or_404(rt, body["model"])
    record.sap_model = sap_model
    if log.isEnabledFor(logging.DEBUG):
        log.debug("%s request body: %s", record.request_id, json.dumps(body)[:100_000])
    call = open_pivot(rt, sap_model, body, client_betas(body), stream=stream,
                      client_model=body["model"], affinity=affinity_key(body))
    exchange = note_exchange(record, call.exchange)
    extra = {"x-gateway-model": sap_model}
    if exchange.source is not None:
        translator = call.stream_translator(BedrockToAnthropicStream(model=body["model"]))
        return sse_response(relay(exchange.source, translator, record,
                                  ping_interval=rt.settings.ping_interval,
                                  pending=exchange.pending,
                                  client=request.environ.get("gunicorn.socket")), extra)
    message = whole_message(call, body["model"], record)
    return Response(dumps(message), mimetype="application/json", headers=extra)


@bp.post("/v1/messages/count_tokens")
def count_tokens() -> Response:
    body = read_json_object()
    if not isinstance(body.get("messages"), list):
        raise errors.InvalidRequest("messages: field required (a list)")
    scale = 1.0
    model = body.get("model")
    if isinstance(model, str) and 0 < len(model) <= 256:
        g.record.model = model
        resolution = current().resolve_model(model)  # never a 404 here: Claude Code falls back
        if resolution is not None and family_of(resolution.sap_name) == "claude":
            scale = current().profile(resolution.sap_name).token_scale
    try:
        tokens = estimate_input_tokens(body, scale=scale)
    except RecursionError:
        raise errors.InvalidRequest("request body is nested too deeply") from None
    return Response(json.dumps({"input_tokens": tokens}), mimetype="application/json")


# --------------------------------------------------------------------------- helpers


def read_json_object() -> dict[str, Any]:
    """The request body as a JSON object, or a 400/413 in the caller's dialect."""
    limit = current().settings.max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise errors.RequestTooLarge(f"request body of {request.content_length} bytes exceeds "
                                     f"the gateway limit of {limit} bytes")
    mimetype = request.mimetype
    if mimetype and mimetype != "application/json" and not mimetype.endswith("+json"):
        raise errors.InvalidRequest(f"Content-Type must be application/json, not {mimetype}")
    raw = request.get_data(cache=False)
    try:
        body = loads(raw)
    except RecursionError:
        raise errors.InvalidRequest("request body is nested too deeply") from None
    except ValueError as exc:
        raise errors.InvalidRequest(f"request body is not valid JSON: {_short_reason(exc)}") \
            from None
    if not isinstance(body, dict):
        raise errors.InvalidRequest("request body must be a JSON object")
    return body


def _short_reason(exc: ValueError) -> str:
    return str(exc).split("\n", 1)[0][:200]


_ROLES = frozenset(("user", "assistant", "system"))


def _check_block(block: Any, where: str) -> None:
    """Shapes the gateway itself relies on; unknown block types pass (future clients)."""
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise errors.InvalidRequest(f"{where}: must be an object with a string 'type'")
    kind = block["type"]
    if kind == "text" and not isinstance(block.get("text"), str):
        raise errors.InvalidRequest(f"{where}.text: must be a string")
    if kind == "tool_use" and not (isinstance(block.get("id"), str) and
                                   isinstance(block.get("name"), str) and
                                   isinstance(block.get("input", {}), dict)):
        raise errors.InvalidRequest(f"{where}: tool_use needs string 'id' and 'name' and an "
                                    "object 'input'")
    if kind == "tool_result":
        if not isinstance(block.get("tool_use_id"), str):
            raise errors.InvalidRequest(f"{where}.tool_use_id: must be a string")
        content = block.get("content", "")
        if isinstance(content, list):
            for j, inner in enumerate(content):
                _check_block(inner, f"{where}.content.{j}")
        elif not isinstance(content, str):
            raise errors.InvalidRequest(f"{where}.content: must be a string or a list")
    if kind in ("image", "document") and not isinstance(block.get("source"), dict):
        raise errors.InvalidRequest(f"{where}.source: must be an object")
    if kind in ("thinking", "redacted_thinking") and not all(
            isinstance(block.get(k, ""), str) for k in ("thinking", "signature", "data")):
        raise errors.InvalidRequest(f"{where}: thinking fields must be strings")
    if block.get("cache_control") is not None and not isinstance(block["cache_control"], dict):
        raise errors.InvalidRequest(f"{where}.cache_control: must be an object")


def model_field(body: dict[str, Any]) -> str:
    """The client's ``model``: a non-empty string of at most 256 characters, or a 400."""
    model = body.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 256:
        raise errors.InvalidRequest("model: field required (a string)")
    return model


def validate_messages_body(body: dict[str, Any]) -> None:
    """Reject, with the field's path, what the gateway cannot safely forward."""
    model_field(body)
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise errors.InvalidRequest("messages: field required (a non-empty list)")
    for i, message in enumerate(messages):
        if not isinstance(message, dict) or not isinstance(message.get("role"), str) \
                or message["role"] not in _ROLES:
            raise errors.InvalidRequest(
                f"messages.{i}: must be an object with role 'user', 'assistant' or 'system'")
        content = message.get("content")
        if isinstance(content, list):
            for j, block in enumerate(content):
                _check_block(block, f"messages.{i}.content.{j}")
        elif not isinstance(content, str):
            raise errors.InvalidRequest(f"messages.{i}.content: must be a string or a list")
    max_tokens = body.get("max_tokens")
    if isinstance(max_tokens, bool) or not isinstance(max_tokens, int) or max_tokens < 1:
        raise errors.InvalidRequest("max_tokens: field required (a positive integer)")
    if "stream" in body and not isinstance(body["stream"], bool):
        raise errors.InvalidRequest("stream: must be a boolean")
    system = body.get("system")
    if isinstance(system, list):
        for j, block in enumerate(system):
            if not isinstance(block, dict) or block.get("type") != "text":
                raise errors.InvalidRequest(f"system.{j}: must be a text block")
            _check_block(block, f"system.{j}")
    elif system is not None and not isinstance(system, str):
        raise errors.InvalidRequest("system: must be a string or a list of text blocks")
    tools = body.get("tools")
    if tools is not None:
        if not isinstance(tools, list):
            raise errors.InvalidRequest("tools: must be a list")
        for j, tool in enumerate(tools):
            if not isinstance(tool, dict) or not isinstance(tool.get("name"), str):
                raise errors.InvalidRequest(f"tools.{j}: must be an object with a string 'name'")
            if tool.get("type") in (None, "custom") and not isinstance(
                    tool.get("input_schema"), dict):
                raise errors.InvalidRequest(f"tools.{j}.input_schema: must be an object")
    for key, expected in (("thinking", dict), ("tool_choice", dict), ("metadata", dict),
                          ("stop_sequences", list)):
        if body.get(key) is not None and not isinstance(body[key], expected):
            raise errors.InvalidRequest(f"{key}: must be {'an object' if expected is dict else 'a list'}")
    thinking = body.get("thinking")
    if isinstance(thinking, dict) and not isinstance(thinking.get("type"), str):
        raise errors.InvalidRequest("thinking.type: must be a string")
    for key in ("temperature", "top_p"):
        value = body.get(key)
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float))):
            raise errors.InvalidRequest(f"{key}: must be a number")
    top_k = body.get("top_k")
    if top_k is not None and (isinstance(top_k, bool) or not isinstance(top_k, int)):
        raise errors.InvalidRequest("top_k: must be an integer")


def client_betas(body: dict[str, Any]) -> list[str]:
    """``anthropic-beta`` header values plus any ``anthropic_beta`` list in the body."""
    betas = [b.strip() for b in request.headers.get("anthropic-beta", "").split(",") if b.strip()]
    in_body = body.get("anthropic_beta")
    if isinstance(in_body, list):
        betas.extend(b for b in in_body if isinstance(b, str))
    return betas


def affinity_key(body: dict[str, Any]) -> str | None:
    """What keeps one conversation on one deployment (so its prompt cache stays warm):
    Claude Code's session id, else ``metadata.user_id``, else the system prompt's start."""
    session = request.headers.get("X-Claude-Code-Session-Id")
    if session:
        return session
    metadata = body.get("metadata")
    if isinstance(metadata, dict) and isinstance(metadata.get("user_id"), str):
        return metadata["user_id"]
    system = body.get("system")
    if isinstance(system, list):
        system = "".join(str(b.get("text", "")) for b in system[:3] if isinstance(b, dict))
    if isinstance(system, str) and system:
        tools = body.get("tools")
        names = ",".join(t.get("name", "") for t in tools if isinstance(t, dict)) \
            if isinstance(tools, list) else ""
        return system[:2048] + "|" + names
    return None


def resolve_or_404(rt: Runtime, client_model: str) -> str:
    resolution = rt.resolve_model(client_model)
    if resolution is None:
        if rt.registry.discovery_errors:
            reasons = "; ".join(sorted(set(rt.registry.discovery_errors.values())))
            raise errors.BadGateway(f"model '{client_model[:200]}' is not known yet: listing "
                                    f"SAP AI Core deployments failed ({reasons})")
        available = ", ".join(sorted(rt.available_models())) or "none"
        raise errors.NotFound(f"model '{client_model[:200]}' is not served by this gateway; "
                              f"available: {available}")
    if resolution.fallback:
        log.info("model %s is not deployed; using %s (same family)", client_model,
                 resolution.sap_name)
    return resolution.sap_name


def note_exchange(record: RequestRecord, exchange: Exchange) -> Exchange:
    """Put what the failover loop settled (deployment, repairs, failovers, SAP AI Core's
    own latency) on the record."""
    record.deployment = exchange.target.deployment_id
    record.repairs = exchange.repairs
    record.failovers = exchange.failovers
    record.upstream_ttfb = exchange.upstream_ttfb
    return exchange


def whole_message(call: PivotCall, client_model: str, record: RequestRecord) -> dict:
    """The non-streaming answer as the Anthropic message for the client; usage recorded."""
    answer = call.bedrock_message(read_json(call.exchange.response))
    message = message_from_bedrock(answer, model=client_model)
    record.usage = usage_from_message(message)
    record.mark_first_event()
    return message
