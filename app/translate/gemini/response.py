"""A Vertex ``GenerateContentResponse`` -> the Anthropic message Bedrock ``/invoke`` returns.

Owns :func:`message_from_gemini` (non-streaming answers, sap-ai-core.md §9.2), the
``finishReason`` table of §9.4 (:data:`STOP_REASONS`, :func:`stop_reason_for`), the usage
arithmetic of clients-and-pain-points.md §2.4 (:func:`usage_from_gemini`) and the content
rules the stream adapter follows too, so a streamed answer accumulates to the same message:

* only the first candidate counts; its parts in order become blocks: a run of ``thought``
  parts -> one ``thinking`` block whose ``signature`` is the last ``thoughtSignature`` among
  them (``""`` when none: Anthropic clients need the field; Gemini never verifies it, the
  request side drops thinking blocks); a run of text parts -> one ``text`` block (empty text
  makes no block); a ``functionCall`` -> a ``tool_use`` block with the client's tool name
  and an id that carries the part's ``thoughtSignature`` (format: ``request.py``);
  other parts (``inlineData``, ``executableCode``...) are skipped;
* ``stop_reason``: §9.4; ``STOP`` with a function call -> ``tool_use``; ``stop_sequence`` is
  always ``null`` (Gemini does not say which stop sequence matched);
  :data:`UNEXPECTED_FINISH_REASONS` map to ``end_turn`` and deserve a WARNING from the caller
  (this module does not log);
* no candidates but ``promptFeedback.blockReason`` -> a ``refusal`` message with one text
  block saying so (:func:`blocked_prompt_text`);
* usage: ``input_tokens = promptTokenCount - cachedContentTokenCount``,
  ``cache_read_input_tokens = cachedContentTokenCount``, ``cache_creation_input_tokens = 0``,
  ``output_tokens = candidatesTokenCount + thoughtsTokenCount``.

Pure: stdlib and ``app.translate`` only; never mutates its input.
"""

from __future__ import annotations

import re
import secrets
from typing import Any, Dict, List, Optional

from app.translate.gemini.request import tool_use_id
from app.translate.gemini.schema import FunctionNames

__all__ = [
    "GeminiResponseError",
    "REFUSAL_FINISH_REASONS",
    "STOP_REASONS",
    "UNEXPECTED_FINISH_REASONS",
    "blocked_prompt_text",
    "message_from_gemini",
    "message_id_for",
    "stop_reason_for",
    "usage_from_gemini",
]

REFUSAL_FINISH_REASONS = frozenset({
    "SAFETY", "RECITATION", "BLOCKLIST", "PROHIBITED_CONTENT", "SPII", "IMAGE_SAFETY",
    "MODEL_ARMOR",
})
UNEXPECTED_FINISH_REASONS = frozenset({
    "MALFORMED_FUNCTION_CALL", "UNEXPECTED_TOOL_CALL", "OTHER", "FINISH_REASON_UNSPECIFIED",
    "LANGUAGE",
})
#: Gemini ``finishReason`` -> Anthropic ``stop_reason`` (``STOP`` with a call: ``tool_use``).
STOP_REASONS: Dict[str, str] = {"STOP": "end_turn", "MAX_TOKENS": "max_tokens"}
STOP_REASONS.update({reason: "refusal" for reason in REFUSAL_FINISH_REASONS})
STOP_REASONS.update({reason: "end_turn" for reason in UNEXPECTED_FINISH_REASONS})

_ID_CHARS = re.compile(r"[^A-Za-z0-9]")


class GeminiResponseError(ValueError):
    """The 200 body is not a usable GenerateContentResponse (e.g. an ``error`` object)."""


def stop_reason_for(finish_reason: Any, *, tool_use: bool) -> str:
    """The Anthropic ``stop_reason`` for a Gemini ``finishReason`` (§9.4)."""
    if finish_reason == "STOP" and tool_use:
        return "tool_use"
    return STOP_REASONS.get(finish_reason, "end_turn") if isinstance(finish_reason, str) \
        else "end_turn"


def _count(meta: dict, key: str) -> int:
    value = meta.get(key)
    return value if type(value) is int and value > 0 else 0


def usage_from_gemini(meta: Any) -> Dict[str, int]:
    """``usageMetadata`` -> Anthropic usage (the four keys, Bedrock's order)."""
    if not isinstance(meta, dict):
        meta = {}
    cached = _count(meta, "cachedContentTokenCount")
    return {
        "input_tokens": max(_count(meta, "promptTokenCount") - cached, 0),
        "output_tokens": _count(meta, "candidatesTokenCount") + _count(meta, "thoughtsTokenCount"),
        "cache_creation_input_tokens": 0,
        "cache_read_input_tokens": cached,
    }


def blocked_prompt_text(feedback: Any) -> Optional[str]:
    """The refusal text for ``promptFeedback`` with a ``blockReason``, else ``None``."""
    if not isinstance(feedback, dict) or not feedback.get("blockReason"):
        return None
    text = f"Gemini blocked the prompt (blockReason: {feedback['blockReason']})."
    detail = feedback.get("blockReasonMessage")
    if isinstance(detail, str) and detail.strip():
        text += " " + detail.strip()
    return text


def message_id_for(resp: Any) -> str:
    """``msg_gm_<responseId>`` (letters and digits only), random when there is none."""
    raw = resp.get("responseId") if isinstance(resp, dict) else None
    clean = _ID_CHARS.sub("", raw)[:48] if isinstance(raw, str) else ""
    return "msg_gm_" + (clean or secrets.token_hex(12))


def first_candidate(resp: dict) -> Optional[dict]:
    candidates = resp.get("candidates")
    if isinstance(candidates, list) and candidates and isinstance(candidates[0], dict):
        return candidates[0]
    return None


def candidate_parts(candidate: Optional[dict]) -> List[dict]:
    content = candidate.get("content") if candidate else None
    parts = content.get("parts") if isinstance(content, dict) else None
    if isinstance(parts, dict):  # single-object form (SAP's snake_case examples)
        parts = [parts]
    return [p for p in parts if isinstance(p, dict)] if isinstance(parts, list) else []


def function_call_input(call: dict) -> dict:
    args = call.get("args")
    return args if isinstance(args, dict) else {}


class _Blocks:
    """Accumulates Anthropic content blocks from Gemini parts (merging runs)."""

    __slots__ = ("blocks", "seed", "names", "calls")

    def __init__(self, seed: str, names: Optional[FunctionNames]) -> None:
        self.blocks: List[dict] = []
        self.seed = seed
        self.names = names
        self.calls = 0

    def add(self, part: dict) -> None:
        last = self.blocks[-1] if self.blocks else None
        call = part.get("functionCall")
        if isinstance(call, dict):
            name = str(call.get("name") or "")
            self.blocks.append({
                "type": "tool_use",
                "id": tool_use_id(self.seed, self.calls, _signature(part)),
                "name": self.names.to_client(name) if self.names else name,
                "input": function_call_input(call),
            })
            self.calls += 1
            return
        text = part.get("text")
        if not isinstance(text, str):
            return
        if part.get("thought") is True:
            signature = _signature(part)
            if not text and not signature:
                return
            if last is None or last["type"] != "thinking":
                last = {"type": "thinking", "thinking": "", "signature": ""}
                self.blocks.append(last)
            last["thinking"] += text
            if signature:
                last["signature"] = signature
        elif text:
            if last is None or last["type"] != "text":
                last = {"type": "text", "text": ""}
                self.blocks.append(last)
            last["text"] += text


def _signature(part: dict) -> str:
    signature = part.get("thoughtSignature")
    return signature if isinstance(signature, str) else ""


def message_from_gemini(resp: Any, *, model: str, names: Optional[FunctionNames] = None,
                        message_id: Optional[str] = None) -> Dict[str, Any]:
    """A non-streaming Gemini answer as a Bedrock ``/invoke`` message for the client.

    ``model``: the client's model id; ``names``: from :class:`GeminiRequest`; ``message_id``:
    defaults to :func:`message_id_for`. Raises :class:`GeminiResponseError` for an ``error``
    body or a body that is not an object."""
    if not isinstance(resp, dict):
        raise GeminiResponseError("Gemini answer is not a JSON object")
    if "error" in resp and "candidates" not in resp:
        error = resp.get("error")
        message = error.get("message") if isinstance(error, dict) else error
        raise GeminiResponseError(str(message or "Gemini returned an error"))
    message_id = message_id or message_id_for(resp)
    blocks = _Blocks(message_id, names)
    candidate = first_candidate(resp)
    for part in candidate_parts(candidate):
        blocks.add(part)
    refusal = None if candidate else blocked_prompt_text(resp.get("promptFeedback"))
    if refusal:
        blocks.blocks.append({"type": "text", "text": refusal})
        stop_reason = "refusal"
    else:
        finish = candidate.get("finishReason") if candidate else None
        stop_reason = stop_reason_for(finish, tool_use=blocks.calls > 0)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": blocks.blocks,
        "stop_reason": stop_reason,
        "stop_sequence": None,
        "usage": usage_from_gemini(resp.get("usageMetadata")),
    }
