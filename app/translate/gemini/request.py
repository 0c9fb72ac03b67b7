"""An Anthropic Messages body -> a Vertex ``GenerateContent`` body (Gemini on SAP AI Core).

Owns :func:`gemini_from_anthropic` (sap-ai-core.md §9.1), the per-model facts it reads
(:class:`GeminiProfile`, :func:`gemini_profile_for`), the URL suffix (:func:`gemini_path`)
and the tool-id format shared with ``response.py`` and ``stream.py``.

Tool ids. Gemini function calls carry no ids, and a ``thoughtSignature`` on a
``functionCall`` part must come back on the next turn. Both travel in the Anthropic tool id
the client stores and echoes, so nothing is kept between requests or workers::

    toolu_gm<16 hex>                        a call without thoughtSignature
    toolu_gm<16 hex>_<base64url signature>  with it: the signature's standard base64 with
                                            "+" -> "-", "/" -> "_" and no "=" padding

The 16 hex are the first 64 bits of ``sha256("<message id>:<n>")`` for the n-th call (0, 1,
...) of a message (:func:`tool_use_id`), so ids are unique per message and reproducible.
Every id matches ``^[a-zA-Z0-9_-]+$``. On the way back :func:`signature_from_tool_id` turns
the suffix into standard padded base64 again and the ``functionCall`` part gets
``"thoughtSignature"`` beside ``"functionCall"``. Ids of another shape (a conversation begun
on Claude) carry no signature; then, when :attr:`GeminiProfile.missing_signature` is set
(Gemini 3: Google's documented ``skip_thought_signature_validator``), a model turn whose
calls have no signature at all gets that value on its first call.

The mapping:

* ``system`` (string or text blocks) -> ``systemInstruction.parts`` (one text part each);
* roles ``user`` -> ``user``, ``assistant`` -> ``model`` (a stray ``system`` -> ``user``);
  turns are never merged or reordered; a turn left without parts is left out;
* blocks: ``text`` -> ``{"text"}``; ``image`` (base64) -> ``inlineData``; ``document``
  (base64, PDF by default) -> ``inlineData``, a ``text`` source -> a text part, a ``content``
  source -> its blocks; ``search_result`` -> one text part; ``tool_use`` -> ``functionCall``
  (``args`` = input); ``tool_result`` -> ``functionResponse`` ``{"name": <Gemini name of the
  tool_use with that id>, "response": {"content": <text>}}`` (``{"error": <text>}`` when
  ``is_error``), never an ``id`` (AI Core rejects it); images and documents inside the result
  follow it as ``inlineData`` parts of the same turn; ``thinking``/``redacted_thinking`` are
  dropped (Gemini cannot verify Claude signatures); other blocks are dropped and listed in
  :attr:`GeminiRequest.dropped`;
* ``tools``: custom tools -> ``functionDeclarations`` (``input_schema`` through
  :func:`~app.translate.gemini.schema.clean_schema`; no ``parameters`` for a tool without
  properties, which Gemini rejects); typed tools (server tools such as
  ``web_search_20250305``, ``bash_*``) are dropped; names go through :class:`FunctionNames`;
* ``tool_choice`` auto/any/none -> ``AUTO``/``ANY``/``NONE``; ``{"type":"tool","name":N}`` ->
  ``ANY`` + ``allowedFunctionNames: [N]``; no ``toolConfig`` without declarations or
  ``tool_choice``, or when the named tool is gone;
* ``max_tokens`` -> ``maxOutputTokens`` clamped to the profile (the profile maximum when
  absent); ``temperature``, ``top_p`` -> ``topP``, ``top_k`` -> ``topK``, ``stop_sequences``
  -> ``stopSequences`` (Gemini takes at most 5: the first 5);
* ``thinking`` enabled -> ``thinkingConfig {"thinkingBudget": budget (clamped to the
  profile), "includeThoughts": true}``, adaptive -> budget ``-1``; disabled or absent -> no
  ``thinkingConfig``; never one when :attr:`GeminiProfile.thinking` is false;
* everything else (``metadata``, ``anthropic_version``, ``anthropic_beta``,
  ``cache_control``, ``citations``, ``disable_parallel_tool_use``) has no Gemini counterpart
  and is not sent.

Errors are :class:`GeminiRequestError` (a ``ValueError``, meant as a 400 for the client)
naming the place. Pure: stdlib and ``app.translate`` only; never mutates its input.
"""

from __future__ import annotations

import base64
import binascii
import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Callable, Dict, List, Mapping, Optional

from app.translate.gemini.schema import FunctionNames, clean_schema

__all__ = [
    "GeminiProfile",
    "GeminiRequest",
    "GeminiRequestError",
    "MAX_STOP_SEQUENCES",
    "SKIP_SIGNATURE",
    "TOOL_ID_PREFIX",
    "gemini_from_anthropic",
    "gemini_path",
    "gemini_profile_for",
    "signature_from_tool_id",
    "tool_use_id",
]

TOOL_ID_PREFIX = "toolu_gm"
_TOOL_ID_RE = re.compile(r"toolu_gm[0-9a-f]{16}(?:_([A-Za-z0-9_-]+))?\Z")
#: Google's documented placeholder that makes Gemini 3 skip thought-signature validation.
SKIP_SIGNATURE = "skip_thought_signature_validator"
MAX_STOP_SEQUENCES = 5
_SAP_MODEL_RE = re.compile(r"[a-z0-9][a-z0-9.-]*\Z")
_ROLES = {"user": "user", "assistant": "model", "system": "user"}


class GeminiRequestError(ValueError):
    """The body cannot be translated; ``str(err)`` is the client-facing message."""


# --------------------------------------------------------------------------- profile


@dataclass(frozen=True)
class GeminiProfile:
    """What one Gemini model on Vertex through SAP AI Core accepts.

    ``thinking``: send ``thinkingConfig`` when the client asks for thinking (whether AI Core
    passes it is unverified, sap-ai-core.md §12). ``max_output_tokens``: cap for
    ``maxOutputTokens``. ``strict_schema``: drop every schema keyword outside the §9.5 keep
    list (false: drop only the delete list). ``max_thinking_budget``: cap for
    ``thinkingBudget``. ``missing_signature``: ``thoughtSignature`` for a model turn whose
    calls carry none ("" = send none). ``alt_sse``: ask for the stream as server-sent events
    (``?alt=sse``; Vertex's own default is a JSON array, which the gateway also reads).
    """

    name: str = ""
    thinking: bool = False
    max_output_tokens: int = 8192
    strict_schema: bool = True
    max_thinking_budget: int = 24576
    missing_signature: str = ""
    alt_sse: bool = True

    def __post_init__(self) -> None:
        for key in ("max_output_tokens", "max_thinking_budget"):
            value = getattr(self, key)
            if type(value) is not int or value < 1:
                raise ValueError(f"{key} must be a positive int, got {value!r}")


_PROFILE_FIELDS = {f.name: f for f in dataclasses.fields(GeminiProfile)}

#: (name prefix, defaults); the first matching prefix wins.
_DEFAULTS = (
    ("gemini-3", dict(thinking=True, max_output_tokens=65536, max_thinking_budget=32768,
                      missing_signature=SKIP_SIGNATURE)),
    ("gemini-2.5-pro", dict(thinking=True, max_output_tokens=65536, max_thinking_budget=32768)),
    ("gemini-2.5-flash", dict(thinking=True, max_output_tokens=65536, max_thinking_budget=24576)),
    ("gemini-2.5", dict(thinking=True, max_output_tokens=65536, max_thinking_budget=24576)),
)


def gemini_profile_for(sap_model: str, overrides: Optional[Mapping[str, Any]] = None) -> GeminiProfile:
    """Default profile for an SAP model name (``gemini-2.5-pro``), ``overrides`` replacing
    fields (from the user's config; an unknown key or a non-bool flag is a ``ValueError``)."""
    values: Dict[str, Any] = {"name": sap_model}
    low = (sap_model or "").lower()
    for prefix, defaults in _DEFAULTS:
        if low.startswith(prefix):
            values.update(defaults)
            break
    for key, value in (overrides or {}).items():
        field = _PROFILE_FIELDS.get(key)
        if field is None:
            raise ValueError(f"unknown Gemini profile field {key!r}; valid fields: "
                             f"{', '.join(sorted(_PROFILE_FIELDS))}")
        if field.type in ("bool", bool) and not isinstance(value, bool):
            raise ValueError(f"Gemini profile field {key!r} must be true or false, got {value!r}")
        values[key] = value
    return GeminiProfile(**values)


def gemini_path(sap_model: str, *, stream: bool, alt_sse: bool = True) -> str:
    """``/models/<sap_model>:generateContent`` (or ``:streamGenerateContent``, with
    ``?alt=sse`` when ``alt_sse``), appended to the deployment URL. ``sap_model`` must be
    lowercase letters, digits, ``.`` and ``-``."""
    if not isinstance(sap_model, str) or not _SAP_MODEL_RE.match(sap_model):
        raise ValueError(f"not a Gemini model name: {sap_model!r}")
    if not stream:
        return f"/models/{sap_model}:generateContent"
    return f"/models/{sap_model}:streamGenerateContent" + ("?alt=sse" if alt_sse else "")


# --------------------------------------------------------------------------- tool ids


def tool_use_id(seed: str, ordinal: int, signature: Optional[str] = None) -> str:
    """The Anthropic id for call ``ordinal`` of message ``seed`` (module docstring)."""
    unique = hashlib.sha256(f"{seed}:{ordinal}".encode("utf-8")).hexdigest()[:16]
    if not signature:
        return TOOL_ID_PREFIX + unique
    urlsafe = signature.replace("+", "-").replace("/", "_").rstrip("=")
    return f"{TOOL_ID_PREFIX}{unique}_{urlsafe}"


def signature_from_tool_id(tool_id: Any) -> Optional[str]:
    """The ``thoughtSignature`` carried by one of our ids (standard base64), else ``None``."""
    if not isinstance(tool_id, str):
        return None
    match = _TOOL_ID_RE.match(tool_id)
    if match is None or not match.group(1):
        return None
    text = match.group(1).replace("-", "+").replace("_", "/")
    text += "=" * (-len(text) % 4)
    try:
        base64.b64decode(text, validate=True)
    except (binascii.Error, ValueError):
        return None
    return text


# --------------------------------------------------------------------------- the request


@dataclass(frozen=True)
class GeminiRequest:
    """``body``: the GenerateContent JSON; ``names``: client <-> Gemini tool names (give it
    to the response/stream translators); ``dropped``: what had no Gemini counterpart
    (``block.<type>``, ``tool_result.<type>``, ``tool.<type>``, ``tool_choice``), for the
    request log."""

    body: dict
    names: FunctionNames
    dropped: tuple = ()


class _Ctx:
    __slots__ = ("names", "profile", "calls", "dropped")

    def __init__(self, names: FunctionNames, profile: GeminiProfile, calls: Dict[str, str]) -> None:
        self.names = names
        self.profile = profile
        self.calls = calls  # tool_use id -> Gemini function name
        self.dropped: List[str] = []

    def drop(self, what: str) -> None:
        if what not in self.dropped:
            self.dropped.append(what)


def gemini_from_anthropic(body: Any, *, profile: GeminiProfile) -> GeminiRequest:
    """Translate a (sanitized) Anthropic Messages body; see the module docstring."""
    if not isinstance(body, dict):
        raise GeminiRequestError("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        raise GeminiRequestError("messages: field required (a non-empty list)")
    names = FunctionNames(_tool_names(body))
    ctx = _Ctx(names, profile, _calls_by_id(messages, names))
    out: Dict[str, Any] = {}
    system = _system_parts(body.get("system"))
    if system:
        out["systemInstruction"] = {"parts": system}
    out["contents"] = _contents(messages, ctx)
    if not out["contents"]:
        raise GeminiRequestError("messages: nothing to send (every message is empty)")
    declarations = _declarations(body.get("tools"), ctx)
    if declarations:
        out["tools"] = [{"functionDeclarations": declarations}]
        tool_config = _tool_config(body.get("tool_choice"), declarations, ctx)
        if tool_config:
            out["toolConfig"] = tool_config
    elif body.get("tool_choice") is not None:
        ctx.drop("tool_choice")
    out["generationConfig"] = _generation_config(body, profile)
    return GeminiRequest(out, names, tuple(ctx.dropped))


def _tool_names(body: dict) -> List[str]:
    found = []
    for tool in body.get("tools") or ():
        if isinstance(tool, dict) and isinstance(tool.get("name"), str):
            found.append(tool["name"])
    for message in body.get("messages") or ():
        for block in _blocks(message):
            if block.get("type") == "tool_use" and isinstance(block.get("name"), str):
                found.append(block["name"])
    return found


def _blocks(message: Any) -> List[dict]:
    content = message.get("content") if isinstance(message, dict) else None
    if not isinstance(content, list):
        return []
    return [b for b in content if isinstance(b, dict)]


def _calls_by_id(messages: list, names: FunctionNames) -> Dict[str, str]:
    calls: Dict[str, str] = {}
    for message in messages:
        for block in _blocks(message):
            if block.get("type") == "tool_use" and isinstance(block.get("id"), str) \
                    and isinstance(block.get("name"), str):
                calls[block["id"]] = names.to_gemini(block["name"])
    return calls


def _system_parts(system: Any) -> List[dict]:
    if isinstance(system, str):
        return [{"text": system}] if system else []
    if not isinstance(system, list):
        return []
    return [{"text": b["text"]} for b in system
            if isinstance(b, dict) and isinstance(b.get("text"), str) and b["text"]]


# --------------------------------------------------------------------------- contents


def _contents(messages: list, ctx: _Ctx) -> List[dict]:
    contents = []
    for i, message in enumerate(messages):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise GeminiRequestError(f"{where}: must be an object")
        role = _ROLES.get(message.get("role"))
        if role is None:
            raise GeminiRequestError(f"{where}.role: must be 'user' or 'assistant'")
        content = message.get("content")
        if isinstance(content, str):
            parts = [{"text": content}] if content else []
        elif isinstance(content, list):
            parts = _parts(content, f"{where}.content", ctx)
        else:
            raise GeminiRequestError(f"{where}.content: must be a string or a list of blocks")
        if role == "model":
            _sign_first_call(parts, ctx.profile.missing_signature)
        if parts:
            contents.append({"role": role, "parts": parts})
    return contents


def _parts(blocks: list, where: str, ctx: _Ctx) -> List[dict]:
    parts: List[dict] = []
    for j, block in enumerate(blocks):
        path = f"{where}.{j}"
        if not isinstance(block, dict) or not isinstance(block.get("type"), str):
            raise GeminiRequestError(f"{path}: must be an object with a string 'type'")
        convert = _BLOCKS.get(block["type"])
        if convert is None:
            ctx.drop("block." + block["type"][:40])
            continue
        parts.extend(convert(block, path, ctx))
    return parts


def _text(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    text = block.get("text")
    if not isinstance(text, str):
        raise GeminiRequestError(f"{where}.text: must be a string")
    return [{"text": text}] if text else []


def _inline_data(source: Any, where: str, default_type: Optional[str]) -> dict:
    if not isinstance(source, dict):
        raise GeminiRequestError(f"{where}.source: must be an object")
    if source.get("type") != "base64":
        raise GeminiRequestError(f"{where}.source.type: only base64 sources can be sent to "
                                 "Gemini on SAP AI Core")
    media_type = source.get("media_type") or default_type
    data = source.get("data")
    if not isinstance(media_type, str) or not isinstance(data, str) or not data:
        raise GeminiRequestError(f"{where}.source: media_type and data are required")
    return {"inlineData": {"mimeType": media_type, "data": data}}


def _image(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    return [_inline_data(block.get("source"), where, None)]


def _document(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "text":
        data = source.get("data")
        return [{"text": data}] if isinstance(data, str) and data else []
    if kind == "content":
        inner = source.get("content")
        if isinstance(inner, str):
            return [{"text": inner}] if inner else []
        return _parts(inner if isinstance(inner, list) else [], f"{where}.source.content", ctx)
    return [_inline_data(source, where, "application/pdf")]


def _search_result(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    text = _search_result_text(block)
    return [{"text": text}] if text else []


def _search_result_text(block: dict) -> str:
    lines = [str(block.get(k)) for k in ("title", "source") if block.get(k)]
    for inner in block.get("content") or ():
        if isinstance(inner, dict) and isinstance(inner.get("text"), str):
            lines.append(inner["text"])
    return "\n".join(lines)


def _tool_use(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise GeminiRequestError(f"{where}.name: must be a non-empty string")
    args = block.get("input")
    if args is None:
        args = {}
    if not isinstance(args, dict):
        raise GeminiRequestError(f"{where}.input: must be an object")
    part: Dict[str, Any] = {"functionCall": {"name": ctx.names.to_gemini(name), "args": args}}
    signature = signature_from_tool_id(block.get("id"))
    if signature:
        part["thoughtSignature"] = signature
    return [part]


def _tool_result(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    tool_use_id = block.get("tool_use_id")
    name = ctx.calls.get(tool_use_id) if isinstance(tool_use_id, str) else None
    if name is None:
        raise GeminiRequestError(
            f"{where}.tool_use_id: no tool_use block with id {str(tool_use_id)[:80]!r} in the "
            "conversation; every tool_result must answer a tool_use of an earlier assistant turn")
    texts: List[str] = []
    extra: List[dict] = []
    content = block.get("content")
    if isinstance(content, str):
        texts.append(content)
    elif isinstance(content, list):
        for k, inner in enumerate(content):
            path = f"{where}.content.{k}"
            kind = inner.get("type") if isinstance(inner, dict) else None
            if kind == "text" and isinstance(inner.get("text"), str):
                texts.append(inner["text"])
            elif kind == "image":
                extra.append(_inline_data(inner.get("source"), path, None))
            elif kind == "document":
                extra.extend(_document(inner, path, ctx))
            elif kind == "search_result":
                texts.append(_search_result_text(inner))
            else:
                ctx.drop(f"tool_result.{str(kind)[:40]}")
    text = "\n".join(t for t in texts if t)
    key = "error" if block.get("is_error") is True else "content"
    return [{"functionResponse": {"name": name, "response": {key: text}}}] + extra


def _dropped(block: dict, where: str, ctx: _Ctx) -> List[dict]:
    return []  # thinking / redacted_thinking: Gemini cannot use Claude's reasoning


_BLOCKS: Dict[str, Callable[[dict, str, _Ctx], List[dict]]] = {
    "text": _text,
    "image": _image,
    "document": _document,
    "search_result": _search_result,
    "tool_use": _tool_use,
    "tool_result": _tool_result,
    "thinking": _dropped,
    "redacted_thinking": _dropped,
}


def _sign_first_call(parts: List[dict], placeholder: str) -> None:
    """A model turn with calls but no signature at all: the placeholder on its first call."""
    if not placeholder:
        return
    calls = [p for p in parts if "functionCall" in p]
    if calls and not any("thoughtSignature" in p for p in calls):
        calls[0]["thoughtSignature"] = placeholder


# --------------------------------------------------------------------------- tools


def _declarations(tools: Any, ctx: _Ctx) -> List[dict]:
    if not isinstance(tools, list):
        return []
    out = []
    for i, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise GeminiRequestError(f"tools.{i}: must be an object")
        kind = tool.get("type")
        if kind not in (None, "custom"):
            ctx.drop(f"tool.{str(kind)[:40]}")  # a server tool Gemini does not run
            continue
        name = tool.get("name")
        if not isinstance(name, str) or not name:
            raise GeminiRequestError(f"tools.{i}.name: must be a non-empty string")
        declaration: Dict[str, Any] = {"name": ctx.names.to_gemini(name)}
        description = tool.get("description")
        if isinstance(description, str) and description:
            declaration["description"] = description
        parameters = clean_schema(tool.get("input_schema") or {}, strict=ctx.profile.strict_schema)
        if parameters.get("properties") or parameters.get("anyOf"):
            declaration["parameters"] = parameters
        out.append(declaration)
    return out


_MODES = {"auto": "AUTO", "any": "ANY", "none": "NONE"}


def _tool_config(choice: Any, declarations: List[dict], ctx: _Ctx) -> Optional[dict]:
    if not isinstance(choice, dict):
        return None
    kind = choice.get("type")
    if kind in _MODES:
        return {"functionCallingConfig": {"mode": _MODES[kind]}}
    if kind == "tool" and isinstance(choice.get("name"), str):
        name = ctx.names.to_gemini(choice["name"])
        if any(d["name"] == name for d in declarations):
            return {"functionCallingConfig": {"mode": "ANY", "allowedFunctionNames": [name]}}
    ctx.drop("tool_choice")
    return None


# --------------------------------------------------------------------------- generation


def _number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _generation_config(body: dict, profile: GeminiProfile) -> dict:
    config: Dict[str, Any] = {}
    max_tokens = body.get("max_tokens")
    if type(max_tokens) is int and max_tokens > 0:
        config["maxOutputTokens"] = min(max_tokens, profile.max_output_tokens)
    else:
        config["maxOutputTokens"] = profile.max_output_tokens
    for source, target in (("temperature", "temperature"), ("top_p", "topP"), ("top_k", "topK")):
        if _number(body.get(source)):
            config[target] = body[source]
    stops = body.get("stop_sequences")
    if isinstance(stops, list):
        stops = [s for s in stops if isinstance(s, str) and s][:MAX_STOP_SEQUENCES]
        if stops:
            config["stopSequences"] = stops
    thinking = _thinking_config(body.get("thinking"), profile)
    if thinking:
        config["thinkingConfig"] = thinking
    return config


def _thinking_config(thinking: Any, profile: GeminiProfile) -> Optional[dict]:
    if not profile.thinking or not isinstance(thinking, dict):
        return None
    kind = thinking.get("type")
    if kind == "adaptive":
        budget = -1
    elif kind == "enabled":
        budget = thinking.get("budget_tokens")
        budget = min(budget, profile.max_thinking_budget) \
            if type(budget) is int and budget > 0 else -1
    else:
        return None
    return {"thinkingBudget": budget, "includeThoughts": True}
