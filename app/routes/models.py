"""``GET /v1/models``: the served models, in a shape Anthropic and OpenAI clients accept.

Answered from the deployment registry (no upstream call). Claude models are listed
under Anthropic-style ids (``claude-sonnet-4-5``), which Claude Code's gateway
discovery keeps; other models under their SAP names.
"""

from __future__ import annotations

import json
from typing import Any

from flask import Blueprint, Response, request

from app import errors
from app.routes import authenticate_request
from app.model_names import family_of, parse_claude
from app.runtime import current

bp = Blueprint("models", __name__)
bp.before_request(authenticate_request)

CREATED_AT = "2025-01-01T00:00:00Z"
CREATED = 1735689600


def model_entries() -> list[dict[str, Any]]:
    entries = []
    for sap_name, targets in sorted(current().available_models().items()):
        parsed = parse_claude(sap_name) if family_of(sap_name) == "claude" else None
        model_id = parsed.anthropic_id if parsed else sap_name
        display = (parsed.display_name if parsed else sap_name) + " (SAP AI Core)"
        entries.append({
            "type": "model", "object": "model", "id": model_id, "display_name": display,
            "description": f"{sap_name}, {len(targets)} deployment(s)",
            "created_at": CREATED_AT, "created": CREATED, "owned_by": "sap-ai-core",
            "family": family_of(sap_name), "sap_model": sap_name,
        })
    return entries


@bp.get("/v1/models")
def list_models() -> Response:
    entries = model_entries()
    after, before = request.args.get("after_id"), request.args.get("before_id")
    ids = [e["id"] for e in entries]
    if after in ids:
        entries = entries[ids.index(after) + 1:]
    elif before in ids:
        entries = entries[:ids.index(before)]
    limit = request.args.get("limit", type=int)
    has_more = False
    if limit is not None and 0 < limit < len(entries):
        entries, has_more = entries[:limit], True
    body = {"object": "list", "data": entries, "has_more": has_more,
            "first_id": entries[0]["id"] if entries else None,
            "last_id": entries[-1]["id"] if entries else None}
    return Response(json.dumps(body), mimetype="application/json")


@bp.get("/v1/models/<path:model_id>")
def get_model(model_id: str) -> Response:
    rt = current()
    resolution = rt.resolve_model(model_id)
    for entry in model_entries():
        if resolution is not None and entry["sap_model"] == resolution.sap_name:
            return Response(json.dumps(entry), mimetype="application/json")
    raise errors.NotFound(f"model '{model_id[:200]}' is not served by this gateway")
