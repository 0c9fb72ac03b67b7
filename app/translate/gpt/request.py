"""Request bodies for GPT deployments on Azure OpenAI through SAP AI Core (sap-ai-core.md §8.1).

Owns :class:`GptProfile` (what one GPT model accepts: data, not code) and
:func:`gpt_profile_for`, the two body builders and the URL paths:

* :func:`chat_from_anthropic`: an Anthropic Messages body (as our sanitizer or
  ``app.translate.openai.chat_request`` produce it) -> an Azure chat body, following the
  cheat-sheet of clients-and-pain-points.md §4:

  - ``system`` (string or text blocks) -> one leading ``system`` message, texts joined by a
    blank line; a ``role: "system"`` message left in ``messages`` stays a system message in
    place. Messages are never reordered and ``tool_result`` is never flattened into user text.
  - user ``text`` / ``image`` (base64 -> ``data:`` URL, ``url`` as is) / ``document`` (PDF ->
    a ``file`` part with a ``data:`` URL; plain-text and content documents -> text) /
    ``search_result`` (-> text) blocks -> content parts (one text part -> a plain string).
  - each ``tool_result`` -> a ``role: "tool"`` message with its text at its place. Images and
    PDFs in results cannot ride in a tool message: they go, in order, into the user message
    that follows the run of tool messages (ahead of the user's own parts), and the tool
    message says so (:data:`ATTACHMENT_NOTE`). ``is_error`` has no OpenAI field: the text
    is sent unchanged (Claude Code already wraps errors in ``<tool_use_error>``).
  - assistant text blocks -> ``content`` (joined by a blank line; ``null`` with only tool
    calls), ``tool_use`` -> ``tool_calls`` (``arguments`` = compact JSON of ``input``).
    ``thinking`` / ``redacted_thinking`` blocks are dropped (no Azure equivalent); an
    assistant turn left with nothing is dropped.
  - tool call ids (:func:`azure_tool_id`): Anthropic ids are used unchanged, except that the
    ``toolu_`` prefix the response translators add to Azure's own ``call_...`` ids is taken
    off again (so Azure sees its ids), and ids over OpenAI's 40-character limit are shortened
    deterministically (first 23 characters, ``_``, 16 hex digits of their SHA-256), the same
    way in ``tool_calls`` and in tool messages.
  - custom tools -> ``function`` tools (``input_schema`` -> ``parameters`` without
    ``$schema``; ``cache_control``, ``defer_loading``, ``strict``, ... dropped); server tools
    (``web_search_20250305``, ``bash_*``, ...) are dropped, and a ``tool_choice`` naming a
    dropped tool with them. ``tool_choice`` auto/any/tool/none -> auto/required/function/none;
    ``disable_parallel_tool_use`` -> ``parallel_tool_calls: false``.
  - ``max_tokens`` -> ``max_completion_tokens``, lowered to ``profile.max_output_tokens`` when
    set. ``temperature`` / ``top_p`` pass for classic models and are dropped for reasoning
    models; ``top_k`` is always dropped. ``stop_sequences`` -> ``stop`` (OpenAI takes at most
    :data:`MAX_STOP` of them: the first ones are kept).
  - ``thinking`` on a reasoning model -> ``reasoning_effort``: ``enabled`` by budget
    (<= 2048 low, <= 8192 medium, else high), ``adaptive`` -> ``output_config.effort`` when
    given, else medium; with no ``thinking`` an ``output_config.effort`` still counts. Classic
    models get no reasoning field.
  - ``metadata.user_id`` -> ``user`` (longer than 256 characters: its SHA-256 in hex).
  - ``stream`` -> ``"stream": true`` plus ``"stream_options": {"include_usage": true}``.
  - Bedrock envelope and Anthropic-only top-level keys (``anthropic_version``,
    ``anthropic_beta``, ``context_management``, ``service_tier``, ...) are left out.
  - A content block type this module does not know (``server_tool_use``,
    ``container_upload``, ...) raises :class:`GptRequestError` naming its path.

* :func:`prepare_chat`: an OpenAI client's chat body -> the body to send to Azure, and
  whether the client itself asked for streamed usage (the §8.1 rules; see its docstring).
* :func:`api_path`: ``/chat/completions?api-version=...`` or ``/embeddings?api-version=...``.

Pure: stdlib and ``app.wire`` only, no Flask, no requests, no configuration reads; inputs
are never mutated.
"""

from __future__ import annotations

import dataclasses
import hashlib
import re
from dataclasses import dataclass
from typing import Any, Mapping, Optional, Tuple
from urllib.parse import quote

from app.wire.jsoncodec import dumps_str

__all__ = [
    "ATTACHMENT_NOTE",
    "DEFAULT_API_VERSION",
    "GptProfile",
    "GptRequestError",
    "MAX_TOOL_CALL_ID",
    "api_path",
    "azure_tool_id",
    "chat_from_anthropic",
    "gpt_profile_for",
    "prepare_chat",
    "reasoning_effort_for_budget",
]

DEFAULT_API_VERSION = "2025-04-01-preview"
#: OpenAI rejects longer ``tool_calls[].id`` / ``tool_call_id`` values.
MAX_TOOL_CALL_ID = 40
#: OpenAI accepts at most this many ``stop`` sequences.
MAX_STOP = 4
#: A ``user`` value longer than this is replaced by its SHA-256 (hex).
MAX_USER = 256
#: Said in a tool message whose images/PDFs travel in the following user message.
ATTACHMENT_NOTE = "[the images or files of this tool result follow in the next user message]"

#: The prefix the response translators put before Azure's own tool call ids.
ANTHROPIC_TOOL_PREFIX = "toolu_"
AZURE_CALL_PREFIX = "call_"

#: Effort levels Azure takes; Anthropic's ``max`` is above ``high``, so it becomes ``high``.
EFFORTS = {"minimal": "minimal", "low": "low", "medium": "medium", "high": "high",
           "max": "high"}
ADAPTIVE_EFFORT = "medium"

#: Parameters reasoning models reject (sap-ai-core.md §8.1); ``temperature`` is kept at 1.
REASONING_REJECTS = ("top_p", "presence_penalty", "frequency_penalty", "logprobs",
                     "top_logprobs", "logit_bias", "stop")

#: Anthropic tool ``type`` values that are custom tools; every other type is a server tool.
CUSTOM_TOOL_TYPES = (None, "custom")


class GptRequestError(ValueError):
    """The body cannot be translated for Azure; ``str(err)`` names the field (a client 400)."""


# --------------------------------------------------------------------------- profiles


@dataclass(frozen=True)
class GptProfile:
    """What one GPT model on Azure OpenAI (through SAP AI Core) accepts.

    ``reasoning``: an o-series / gpt-5 model (``max_completion_tokens`` only, no sampling
    parameters, ``reasoning_effort``). ``api_version``: the ``api-version`` query value.
    ``max_output_tokens``: the model's output ceiling (``None``: unknown, nothing is
    lowered).
    """

    name: str = ""
    reasoning: bool = False
    api_version: str = DEFAULT_API_VERSION
    max_output_tokens: Optional[int] = None

    def __post_init__(self) -> None:
        if not isinstance(self.reasoning, bool):
            raise ValueError(f"reasoning must be true or false, got {self.reasoning!r}")
        if not isinstance(self.api_version, str) or not self.api_version.strip():
            raise ValueError(f"api_version must be a non-empty string, got {self.api_version!r}")
        limit = self.max_output_tokens
        if limit is not None and (isinstance(limit, bool) or not isinstance(limit, int)
                                  or limit < 1):
            raise ValueError(f"max_output_tokens must be a positive int or null, got {limit!r}")


#: (pattern on the lower-cased SAP model name, reasoning, max output tokens), first match
#: wins. Output ceilings are OpenAI's published model limits; names not listed are
#: classic models with no known ceiling.
_MODEL_RULES: Tuple[Tuple[re.Pattern, bool, Optional[int]], ...] = (
    (re.compile(r"gpt-5[\w.]*-chat"), False, 16384),  # the non-reasoning chat variant
    (re.compile(r"gpt-5"), True, 128000),
    (re.compile(r"o1-mini"), True, 65536),
    (re.compile(r"o1-preview"), True, 32768),
    (re.compile(r"o[134](?:-|$)"), True, 100000),  # o1, o3, o3-mini, o3-pro, o4-mini
    (re.compile(r"gpt-4\.1"), False, 32768),
    (re.compile(r"gpt-4o"), False, 16384),
)

_PROFILE_FIELDS = {f.name for f in dataclasses.fields(GptProfile)}


def gpt_profile_for(sap_model: str, overrides: Optional[Mapping[str, Any]] = None) -> GptProfile:
    """Default profile for an SAP model name (``gpt-4o``, ``gpt-5``, ``o3-mini``), with
    ``overrides`` from the user's configuration replacing fields (an unknown key raises
    ``ValueError``, so a typo in the config is loud)."""
    low = (sap_model or "").strip().lower()
    low = low.rsplit("--", 1)[-1]  # tolerate an "<executable>--" prefix
    values: dict = {"name": sap_model or ""}
    for pattern, reasoning, limit in _MODEL_RULES:
        if pattern.match(low):
            values.update(reasoning=reasoning, max_output_tokens=limit)
            break
    for key, value in (overrides or {}).items():
        if key not in _PROFILE_FIELDS:
            raise ValueError(f"unknown GPT profile field {key!r}; valid fields: "
                             f"{', '.join(sorted(_PROFILE_FIELDS))}")
        values[key] = value
    return GptProfile(**values)


def api_path(profile: GptProfile, *, embeddings: bool = False) -> str:
    """The deployment-relative path with the profile's ``api-version``."""
    route = "/embeddings" if embeddings else "/chat/completions"
    return f"{route}?api-version={quote(profile.api_version, safe='-._')}"


# --------------------------------------------------------------------------- tool ids


def azure_tool_id(tool_id: Any, where: str = "id") -> str:
    """The id Azure sees for an Anthropic tool id (module docstring); deterministic."""
    if not isinstance(tool_id, str) or not tool_id:
        raise GptRequestError(f"{where}: must be a non-empty string")
    if tool_id.startswith(ANTHROPIC_TOOL_PREFIX) and \
            tool_id[len(ANTHROPIC_TOOL_PREFIX):].startswith(AZURE_CALL_PREFIX):
        tool_id = tool_id[len(ANTHROPIC_TOOL_PREFIX):]
    if len(tool_id) <= MAX_TOOL_CALL_ID:
        return tool_id
    digest = hashlib.sha256(tool_id.encode("utf-8")).hexdigest()[:16]
    return f"{tool_id[:MAX_TOOL_CALL_ID - 17]}_{digest}"


# --------------------------------------------------------------------------- content blocks


def _text(block: dict, where: str) -> str:
    text = block.get("text")
    if not isinstance(text, str):
        raise GptRequestError(f"{where}.text: must be a string")
    return text


def _image_part(block: dict, where: str) -> dict:
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    if kind == "base64":
        media_type, data = source.get("media_type"), source.get("data")
        if not isinstance(media_type, str) or not isinstance(data, str) or not data:
            raise GptRequestError(f"{where}.source: base64 images need media_type and data")
        url = f"data:{media_type};base64,{data}"
    elif kind == "url" and isinstance(source.get("url"), str) and source["url"]:
        url = source["url"]
    else:
        raise GptRequestError(f"{where}.source.type: only base64 and url images can be sent "
                              "to GPT models")
    return {"type": "image_url", "image_url": {"url": url}}


def _document_part(block: dict, where: str) -> dict:
    """A PDF -> a ``file`` part; a text or content document -> a ``text`` part."""
    source = block.get("source")
    kind = source.get("type") if isinstance(source, dict) else None
    title = block.get("title") if isinstance(block.get("title"), str) else ""
    if kind == "base64" and source.get("media_type") == "application/pdf" \
            and isinstance(source.get("data"), str) and source["data"]:
        return {"type": "file", "file": {
            "filename": title or "document.pdf",
            "file_data": f"data:application/pdf;base64,{source['data']}"}}
    if kind == "text" and isinstance(source.get("data"), str):
        text = source["data"]
    elif kind == "content" and isinstance(source.get("content"), (str, list)):
        text = _plain_text(source["content"], where + ".source.content")
    else:
        raise GptRequestError(f"{where}.source: GPT models take PDF (base64), text and "
                              "content documents only")
    return {"type": "text", "text": f"{title}\n\n{text}" if title else text}


def _search_result_part(block: dict, where: str) -> dict:
    lines = [block[k] for k in ("title", "source") if isinstance(block.get(k), str) and block[k]]
    lines.append(_plain_text(block.get("content") or [], where + ".content"))
    return {"type": "text", "text": "\n".join(line for line in lines if line)}


def _plain_text(content: Any, where: str) -> str:
    """A string or a list of text blocks -> one string."""
    if isinstance(content, str):
        return content
    if not isinstance(content, list):
        raise GptRequestError(f"{where}: must be a string or a list of text blocks")
    texts = []
    for j, block in enumerate(content):
        if not isinstance(block, dict) or block.get("type") != "text":
            raise GptRequestError(f"{where}.{j}: only text blocks are allowed here")
        texts.append(_text(block, f"{where}.{j}"))
    return "\n\n".join(t for t in texts if t)


def _text_part(block: dict, where: str) -> Optional[dict]:
    text = _text(block, where)
    return {"type": "text", "text": text} if text else None


def _dropped(block: dict, where: str) -> None:
    return None


#: User-turn block type -> converter to an OpenAI content part (``None``: nothing to send).
_USER_PARTS = {
    "text": _text_part,
    "image": _image_part,
    "document": _document_part,
    "search_result": _search_result_part,
    "thinking": _dropped,
    "redacted_thinking": _dropped,
}


def _block_type(block: Any, where: str) -> str:
    if not isinstance(block, dict) or not isinstance(block.get("type"), str):
        raise GptRequestError(f"{where}: must be an object with a string 'type'")
    return block["type"]


def _unknown(kind: str, where: str, allowed) -> GptRequestError:
    return GptRequestError(f"{where}.type: '{kind[:40]}' blocks cannot be sent to GPT models "
                           f"(supported here: {', '.join(allowed)})")


# --------------------------------------------------------------------------- tool results


def _tool_result_parts(content: Any, where: str) -> Tuple[list, list]:
    """``tool_result.content`` -> (texts, attachments for the following user message)."""
    if content is None:
        return [], []
    if isinstance(content, str):
        return [content], []
    if not isinstance(content, list):
        raise GptRequestError(f"{where}: must be a string or a list of blocks")
    texts: list = []
    attachments: list = []
    for j, block in enumerate(content):
        path = f"{where}.{j}"
        kind = _block_type(block, path)
        if kind == "text":
            texts.append(_text(block, path))
        elif kind == "image":
            attachments.append(_image_part(block, path))
        elif kind == "document":
            part = _document_part(block, path)
            if part["type"] == "text":
                texts.append(part["text"])
            else:
                attachments.append(part)
        elif kind == "search_result":
            texts.append(_search_result_part(block, path)["text"])
        elif kind == "tool_reference":  # Claude Code's ToolSearch result, if not sanitized
            texts.append(f"Tool loaded: {block.get('tool_name', '')}")
        else:
            raise _unknown(kind, path, ("text", "image", "document", "search_result",
                                        "tool_reference"))
    return texts, attachments


def _tool_message(block: dict, where: str) -> Tuple[dict, list]:
    call_id = azure_tool_id(block.get("tool_use_id"), where + ".tool_use_id")
    texts, attachments = _tool_result_parts(block.get("content"), where + ".content")
    if attachments:
        texts.append(ATTACHMENT_NOTE)
    text = "\n\n".join(t for t in texts if t)
    return {"role": "tool", "tool_call_id": call_id, "content": text}, attachments


# --------------------------------------------------------------------------- messages


def _user_message(parts: list) -> dict:
    if len(parts) == 1 and parts[0]["type"] == "text":
        return {"role": "user", "content": parts[0]["text"]}
    return {"role": "user", "content": parts}


def _user_messages(content: Any, where: str) -> list:
    """One Anthropic user turn -> tool messages and user messages, in order."""
    if isinstance(content, str):
        return [{"role": "user", "content": content}] if content else []
    if not isinstance(content, list):
        raise GptRequestError(f"{where}: must be a string or a list of blocks")
    out: list = []
    parts: list = []  # the user message being built
    attached: list = []  # tool-result attachments, waiting for the end of the tool run
    for j, block in enumerate(content):
        path = f"{where}.{j}"
        kind = _block_type(block, path)
        if kind == "tool_result":
            if parts:  # user parts before a result (unusual): keep their place
                out.append(_user_message(parts))
                parts = []
            message, attachments = _tool_message(block, path)
            out.append(message)
            attached.extend(attachments)
            continue
        convert = _USER_PARTS.get(kind)
        if convert is None:
            raise _unknown(kind, path, ("tool_result", *_USER_PARTS))
        part = convert(block, path)
        if part is None or (part["type"] == "text" and not part["text"]):
            continue
        if attached:
            parts.extend(attached)
            attached = []
        parts.append(part)
    parts.extend(attached)
    if parts:
        out.append(_user_message(parts))
    return out


def _tool_call(block: dict, where: str) -> dict:
    name = block.get("name")
    if not isinstance(name, str) or not name:
        raise GptRequestError(f"{where}.name: must be a non-empty string")
    arguments = block.get("input")
    return {"id": azure_tool_id(block.get("id"), where + ".id"), "type": "function",
            "function": {"name": name,
                         "arguments": dumps_str({} if arguments is None else arguments)}}


def _assistant_message(content: Any, where: str) -> Optional[dict]:
    if isinstance(content, str):
        return {"role": "assistant", "content": content} if content else None
    if not isinstance(content, list):
        raise GptRequestError(f"{where}: must be a string or a list of blocks")
    texts: list = []
    calls: list = []
    for j, block in enumerate(content):
        path = f"{where}.{j}"
        kind = _block_type(block, path)
        if kind == "text":
            text = _text(block, path)
            if text:
                texts.append(text)
        elif kind == "tool_use":
            calls.append(_tool_call(block, path))
        elif kind not in ("thinking", "redacted_thinking"):
            raise _unknown(kind, path, ("text", "tool_use", "thinking", "redacted_thinking"))
    if not texts and not calls:
        return None
    message: dict = {"role": "assistant", "content": "\n\n".join(texts) if texts else None}
    if calls:
        message["tool_calls"] = calls
    return message


def _system_text(system: Any, where: str) -> str:
    if isinstance(system, str):
        return system
    if not isinstance(system, list):
        raise GptRequestError(f"{where}: must be a string or a list of text blocks")
    texts = []
    for j, block in enumerate(system):
        path = f"{where}.{j}"
        kind = _block_type(block, path)
        if kind != "text":
            raise _unknown(kind, path, ("text",))
        texts.append(_text(block, path))
    return "\n\n".join(t for t in texts if t)


def _messages(body: dict) -> list:
    out: list = []
    if body.get("system") is not None:
        system = _system_text(body["system"], "system")
        if system:
            out.append({"role": "system", "content": system})
    items = body.get("messages")
    if not isinstance(items, list) or not items:
        raise GptRequestError("messages: field required (a non-empty list)")
    for i, message in enumerate(items):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise GptRequestError(f"{where}: must be an object")
        role, content = message.get("role"), message.get("content")
        if role == "user":
            out.extend(_user_messages(content, where + ".content"))
        elif role == "assistant":
            reply = _assistant_message(content, where + ".content")
            if reply is not None:
                out.append(reply)
        elif role == "system":  # only if the sanitizer did not fold it: keep its place
            text = _system_text(content, where + ".content")
            if text:
                out.append({"role": "system", "content": text})
        else:
            raise GptRequestError(f"{where}.role: must be 'user' or 'assistant'")
    return out


# --------------------------------------------------------------------------- tools


def _function_tool(tool: dict, where: str) -> dict:
    name = tool.get("name")
    if not isinstance(name, str) or not name:
        raise GptRequestError(f"{where}.name: must be a non-empty string")
    schema = tool.get("input_schema")
    if schema is None:
        schema = {"type": "object", "properties": {}}
    elif not isinstance(schema, dict):
        raise GptRequestError(f"{where}.input_schema: must be an object")
    elif "$schema" in schema:
        schema = {k: v for k, v in schema.items() if k != "$schema"}
    function: dict = {"name": name}
    description = tool.get("description")
    if isinstance(description, str) and description:
        function["description"] = description
    function["parameters"] = schema
    return {"type": "function", "function": function}


def _tools(body: dict, chat: dict) -> None:
    tools = body.get("tools")
    if tools is None:
        return
    if not isinstance(tools, list):
        raise GptRequestError("tools: must be a list")
    out = []
    for j, tool in enumerate(tools):
        if not isinstance(tool, dict):
            raise GptRequestError(f"tools.{j}: must be an object")
        if tool.get("type") in CUSTOM_TOOL_TYPES:
            out.append(_function_tool(tool, f"tools.{j}"))
        # any other type is a server tool (web_search_20250305, bash_20250124, ...): dropped
    if not out:
        return
    chat["tools"] = out
    names = {tool["function"]["name"] for tool in out}
    choice = body.get("tool_choice")
    if choice is None:
        return
    if not isinstance(choice, dict):
        raise GptRequestError("tool_choice: must be an object")
    kind = choice.get("type")
    if kind in ("auto", "none"):
        chat["tool_choice"] = kind
    elif kind == "any":
        chat["tool_choice"] = "required"
    elif kind == "tool":
        name = choice.get("name")
        if not isinstance(name, str) or not name:
            raise GptRequestError("tool_choice.name: must be a non-empty string")
        if name not in names:
            return  # it named a server tool that was dropped: let the model choose
        chat["tool_choice"] = {"type": "function", "function": {"name": name}}
    else:
        raise GptRequestError("tool_choice.type: must be one of auto, any, tool, none")
    if choice.get("disable_parallel_tool_use") is True and kind != "none":
        chat["parallel_tool_calls"] = False


# --------------------------------------------------------------------------- parameters


def _number(body: dict, key: str) -> Optional[float]:
    value = body.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise GptRequestError(f"{key}: must be a number")
    return value


def _max_completion_tokens(value: Any, key: str, profile: GptProfile) -> Optional[int]:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise GptRequestError(f"{key}: must be a positive integer")
    if profile.max_output_tokens is not None:
        return min(value, profile.max_output_tokens)
    return value


def reasoning_effort_for_budget(budget: Any) -> str:
    """Anthropic ``thinking.budget_tokens`` -> ``reasoning_effort``."""
    if isinstance(budget, bool) or not isinstance(budget, int):
        return ADAPTIVE_EFFORT
    if budget <= 2048:
        return "low"
    if budget <= 8192:
        return "medium"
    return "high"


def _reasoning_effort(body: dict) -> Optional[str]:
    config = body.get("output_config")
    effort = EFFORTS.get(config.get("effort")) if isinstance(config, dict) else None
    thinking = body.get("thinking")
    kind = thinking.get("type") if isinstance(thinking, dict) else None
    if kind == "enabled":
        return reasoning_effort_for_budget(thinking.get("budget_tokens"))
    if kind == "adaptive":
        return effort or ADAPTIVE_EFFORT
    if kind is None:
        return effort
    return None  # disabled: the model's default


def _user(body: dict) -> Optional[str]:
    metadata = body.get("metadata")
    user = metadata.get("user_id") if isinstance(metadata, dict) else None
    if not isinstance(user, str) or not user:
        return None
    if len(user) > MAX_USER:
        return hashlib.sha256(user.encode("utf-8")).hexdigest()
    return user


def _stop(body: dict) -> Optional[list]:
    stops = body.get("stop_sequences")
    if stops is None:
        return None
    if not isinstance(stops, list) or not all(isinstance(s, str) for s in stops):
        raise GptRequestError("stop_sequences: must be a list of strings")
    kept = [s for s in stops if s][:MAX_STOP]
    return kept or None


def chat_from_anthropic(body: dict, *, profile: GptProfile,
                        stream: Optional[bool] = None) -> dict:
    """An Anthropic Messages body -> the Azure chat body (module docstring).

    ``stream`` overrides ``body["stream"]`` (the sanitizer removes it from the body).
    Raises :class:`GptRequestError` for content that cannot be expressed for Azure.
    """
    if not isinstance(body, dict):
        raise GptRequestError("request body must be a JSON object")
    chat: dict = {"messages": _messages(body)}
    _tools(body, chat)
    limit = _max_completion_tokens(body.get("max_tokens"), "max_tokens", profile)
    if limit is not None:
        chat["max_completion_tokens"] = limit
    temperature, top_p = _number(body, "temperature"), _number(body, "top_p")
    if not profile.reasoning:
        if temperature is not None:
            chat["temperature"] = temperature
        if top_p is not None:
            chat["top_p"] = top_p
    stop = _stop(body)
    if stop and not profile.reasoning:  # reasoning models refuse `stop` ("Unsupported parameter")
        chat["stop"] = stop
    if profile.reasoning:
        effort = _reasoning_effort(body)
        if effort is not None:
            chat["reasoning_effort"] = effort
    user = _user(body)
    if user is not None:
        chat["user"] = user
    if (body.get("stream") is True) if stream is None else stream:
        chat["stream"] = True
        chat["stream_options"] = {"include_usage": True}
    return chat


# --------------------------------------------------------------------------- pass-through


def prepare_chat(body: dict, *, profile: GptProfile) -> Tuple[dict, bool]:
    """An OpenAI client's chat body -> (body for Azure, client asked for streamed usage).

    ``model`` is dropped (the deployment URL picks the model). ``max_tokens`` becomes
    ``max_completion_tokens`` (when both are sent, ``max_completion_tokens`` wins), lowered
    to ``profile.max_output_tokens`` when that is set. For reasoning models ``temperature``
    other than 1, ``top_p``, ``presence_penalty``, ``frequency_penalty``, ``logprobs``,
    ``top_logprobs`` and ``logit_bias`` are dropped, and a Responses-style
    ``reasoning: {"effort": x}`` becomes ``reasoning_effort`` (unless one is sent); the
    ``reasoning`` object is always dropped (Azure answers 400 "Unknown parameter"). When
    streaming, ``stream_options.include_usage`` is set (other options kept), so the gateway
    always learns the usage; without streaming ``stream_options`` is removed. Everything
    else passes unchanged. The input is not mutated.
    """
    if not isinstance(body, dict):
        raise GptRequestError("request body must be a JSON object")
    out = {k: v for k, v in body.items() if k not in ("model", "reasoning", "stream_options")}
    if "max_tokens" in out:
        legacy = out.pop("max_tokens")
        if out.get("max_completion_tokens") is None:
            out["max_completion_tokens"] = legacy
    if out.get("max_completion_tokens") is not None:
        out["max_completion_tokens"] = _max_completion_tokens(
            out["max_completion_tokens"], "max_completion_tokens", profile)
    if profile.reasoning:
        if "temperature" in out and out["temperature"] != 1:
            del out["temperature"]
        for key in REASONING_REJECTS:
            out.pop(key, None)
        reasoning = body.get("reasoning")
        if isinstance(reasoning, dict) and isinstance(reasoning.get("effort"), str) \
                and out.get("reasoning_effort") is None:
            out["reasoning_effort"] = reasoning["effort"]
    asked = False
    if body.get("stream") is True:
        options = body.get("stream_options")
        options = dict(options) if isinstance(options, dict) else {}
        asked = options.get("include_usage") is True
        options["include_usage"] = True
        out["stream_options"] = options
    return out, asked
