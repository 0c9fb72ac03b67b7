"""An OpenAI Responses request (``POST /v1/responses``) -> an Anthropic Messages body.

:func:`translate_responses_request` owns the mapping for Codex CLI and the ``openai`` SDK's
``client.responses.create``; the body then takes the sanitizer and upstream path of
``/v1/messages``. The leaf rules (content parts, images, tool arguments, tool schemas,
``tool_choice``, sampling, reasoning budgets, :data:`DEFAULT_MAX_TOKENS`) are those of
:mod:`app.translate.openai.chat_request`, imported, not repeated.

* ``instructions`` and the ``system``/``developer`` messages before the first other item ->
  top-level ``system`` text blocks, in order; later ones stay ``role: "system"`` messages,
  which the sanitizer folds into the neighbouring user turn (nothing is reordered).
* ``input``: a string is one user message. Items: ``message`` (``type`` may be left out)
  with ``input_text``/``input_image``/``input_file`` parts for users, ``output_text``/
  ``refusal`` (or ``input_text``) for assistants; ``function_call`` -> ``tool_use`` (``id`` =
  ``call_id``, ``arguments`` parsed); ``function_call_output`` -> ``tool_result`` (a string,
  or input parts). Adjacent items of one role become one Anthropic turn: an assistant
  message and its calls, a run of call outputs and the user message that follows them.
  ``reasoning`` items and records of OpenAI-hosted tool calls (``web_search_call``, ...) are
  skipped; ``item_reference`` and other item types are a 400.
* ``input_image``: a ``data:`` URL -> base64 image, an http(s) URL -> ``url`` source (which
  Bedrock refuses: the sanitizer answers 400); ``file_id`` is a 400. ``input_file``: a PDF
  ``file_data`` URL -> base64 document, ``file_url`` -> ``url`` document (400 in the
  sanitizer), ``file_id`` is a 400.
* ``tools``: ``function`` tools -> ``input_schema`` tools (``strict`` is not sent). Tools
  OpenAI runs on its own servers (:data:`HOSTED_TOOLS`: web search, file search, code
  interpreter, image generation, remote MCP, tool search) are dropped and listed in
  :attr:`ResponsesRequest.dropped_tools`: the model then simply does not have them. Every
  other type (``custom``, ``local_shell``, ``shell``, ``apply_patch``, ``computer*``, ...)
  is a 400, because the client would wait for calls of a shape Claude cannot make.
* ``tool_choice`` auto/none/required/``{"type": "function", "name"}`` -> auto/none/any/tool
  (a choice naming a hosted tool, ``allowed_tools``, ``custom``, ... is a 400);
  ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
* ``max_output_tokens`` -> ``max_tokens`` (else :data:`DEFAULT_MAX_TOKENS`, or the caller's
  ``default_max_tokens``); ``temperature`` (capped at 1), ``top_p``; ``user`` ->
  ``metadata.user_id``; ``reasoning.effort`` -> ``thinking`` exactly as chat's
  ``reasoning_effort`` (``xhigh``/``max`` count as ``high``).
* Stateless gateway: ``previous_response_id``, ``conversation``, ``prompt`` (stored prompt
  templates) and ``background: true`` are a 400; ``store`` is ignored (nothing is stored,
  the answer says ``store: false``). ``text.format`` other than ``text`` (``json_schema``,
  ``json_object``) is a 400: Claude on Bedrock cannot be held to a schema, and a client
  that asked for one would fail to parse free text. Other fields (``metadata``, ``include``,
  ``truncation``, ``prompt_cache_key``, ``service_tier``, ...) are ignored and listed in
  :attr:`ResponsesRequest.ignored`; ``metadata`` is still echoed in the answer.

Errors are :class:`ResponsesRequestError` (the route answers 400 in OpenAI's shape) naming
the field's path. Pure: no Flask, no requests, no configuration, no logging; never mutates
its input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable, Dict

from app.translate.openai.chat_request import (
    DEFAULT_MAX_TOKENS,
    ChatRequestError,
    _arguments,
    _data_url,
    _image_part,
    _parts,
    _reasoning,
    _refusal_part,
    _sampling,
    _text_part,
    _tools,
)

__all__ = ["DEFAULT_MAX_TOKENS", "HOSTED_TOOLS", "ResponsesRequest", "ResponsesRequestError",
           "translate_responses_request"]

#: Tool types OpenAI executes on its side: dropped, never a 400.
HOSTED_TOOLS = frozenset({
    "web_search", "web_search_2025_08_26", "web_search_preview", "web_search_preview_2025_03_11",
    "file_search", "code_interpreter", "image_generation", "mcp", "tool_search",
})
#: Input items that carry nothing Claude can use: reasoning (OpenAI's, encrypted) and records
#: of hosted tool calls.
SKIPPED_ITEMS = frozenset({
    "reasoning", "web_search_call", "file_search_call", "code_interpreter_call",
    "image_generation_call", "mcp_call", "mcp_list_tools", "tool_search_call",
})
#: ``reasoning.effort`` values beyond chat's scale, mapped onto it.
EFFORT_ALIASES = {"xhigh": "high", "max": "high"}
EFFORTS = ("none", "minimal", "low", "medium", "high", "xhigh", "max")

#: Top-level fields this module reads or knowingly rejects; anything else is ignored.
KNOWN_FIELDS = frozenset({
    "model", "input", "instructions", "stream", "max_output_tokens", "temperature", "top_p",
    "tools", "tool_choice", "parallel_tool_calls", "reasoning", "text", "user",
    "previous_response_id", "conversation", "prompt", "background",
})
_STATELESS = " is not supported: the gateway is stateless; send the whole conversation in input"


class ResponsesRequestError(ValueError):
    """The request cannot be translated; the message names the field (a client 400)."""


@dataclass(frozen=True)
class ResponsesRequest:
    body: dict  # the Anthropic Messages body (``model`` is the client's id)
    model: str
    stream: bool
    ignored: tuple  # top-level fields with no Anthropic counterpart
    dropped_tools: tuple  # types of the hosted tools left out, in request order
    echo: dict  # request parameters the response object repeats (instructions, tools, ...)


def translate_responses_request(body: Any, *,
                                default_max_tokens: int | None = None) -> ResponsesRequest:
    """Validate a Responses body and build the Anthropic Messages body.

    ``default_max_tokens`` replaces :data:`DEFAULT_MAX_TOKENS` when the client sends no
    ``max_output_tokens`` (it then also bounds the thinking budget).
    """
    try:
        return _translate(body, default_max_tokens)
    except ChatRequestError as exc:  # from the shared chat helpers
        raise ResponsesRequestError(str(exc)) from None


def _translate(request: Any, default_max_tokens: int | None) -> ResponsesRequest:
    if not isinstance(request, dict):
        raise ResponsesRequestError("request body must be a JSON object")
    model = request.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 256:
        raise ResponsesRequestError("model: field required (a string)")
    _refuse_state(request)
    stream = _optional(request, "stream", bool, "a boolean") or False
    instructions = _optional(request, "instructions", str, "a string")
    _text_format(request.get("text"))

    system, messages = _conversation(request.get("input"))
    body: dict = {"model": model}
    if instructions:
        system.insert(0, {"type": "text", "text": instructions})
    if system:
        body["system"] = system
    body["messages"] = messages
    client_max = _max_output_tokens(request)
    fallback = default_max_tokens or DEFAULT_MAX_TOKENS
    body["max_tokens"] = client_max if client_max is not None else fallback
    _sampling({"temperature": request.get("temperature"), "top_p": request.get("top_p")}, body)
    function_tools, dropped = _function_tools(request.get("tools"))
    parallel = _optional(request, "parallel_tool_calls", bool, "a boolean")
    _tools({"tools": [_as_chat_tool(t) for t in function_tools],
            "tool_choice": _chat_tool_choice(request.get("tool_choice")),
            "parallel_tool_calls": parallel}, body)
    user = request.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    effort = _effort(request.get("reasoning"))
    if effort is not None:
        _reasoning({"reasoning_effort": effort}, body,
                   client_max=client_max if default_max_tokens is None else body["max_tokens"])
    body["stream"] = stream
    ignored = tuple(sorted(k for k in request if k not in KNOWN_FIELDS))
    echo = _echo(request, instructions, function_tools, parallel)
    return ResponsesRequest(body, model, stream, ignored, tuple(dropped), echo)


def _refuse_state(request: dict) -> None:
    for key in ("previous_response_id", "conversation", "prompt"):
        if request.get(key) is not None:
            raise ResponsesRequestError(key + _STATELESS)
    if request.get("background") is True:
        raise ResponsesRequestError("background: background responses are not supported (the "
                                    "gateway is stateless and cannot be polled); use stream")


def _text_format(text: Any) -> None:
    if text is None:
        return
    if not isinstance(text, dict):
        raise ResponsesRequestError("text: must be an object")
    fmt = text.get("format")
    if fmt is None or (isinstance(fmt, dict) and fmt.get("type") == "text"):
        return
    kind = fmt.get("type") if isinstance(fmt, dict) else None
    if kind in ("json_schema", "json_object"):
        raise ResponsesRequestError(f"text.format: '{kind}' is not supported (Claude cannot be "
                                    "held to a response schema here); ask for JSON in the "
                                    "instructions instead")
    raise ResponsesRequestError("text.format: must be {\"type\": \"text\"}")


# --------------------------------------------------------------------------- input items


def _conversation(items: Any) -> tuple[list, list]:
    """``input`` -> (leading system blocks, Anthropic messages)."""
    if isinstance(items, str):
        return [], [{"role": "user", "content": [{"type": "text", "text": items}]}]
    if not isinstance(items, list) or not items:
        raise ResponsesRequestError("input: field required (a string or a non-empty list of "
                                    "items)")
    system: list = []
    turns: list = []
    leading = True
    for i, item in enumerate(items):
        where = f"input.{i}"
        if not isinstance(item, dict):
            raise ResponsesRequestError(f"{where}: must be an object")
        kind = item.get("type", "message")
        if kind in SKIPPED_ITEMS:
            continue
        handler = _ITEMS.get(kind) if isinstance(kind, str) else None
        if handler is None:
            raise ResponsesRequestError(_unsupported_item(kind, where))
        role, blocks = handler(item, where)
        if role == "system":
            if leading:
                system.extend(blocks)
            elif blocks:
                turns.append({"role": "system", "content": blocks})  # folded by the sanitizer
            continue
        leading = False
        _add_turn(turns, role, blocks)
    if not turns:
        raise ResponsesRequestError("input: at least one user message is required besides "
                                    "system and developer messages")
    return system, turns


def _unsupported_item(kind: Any, where: str) -> str:
    if kind == "item_reference":
        return f"{where}: item_reference{_STATELESS}"
    name = str(kind)[:40] if isinstance(kind, str) else repr(kind)[:40]
    return (f"{where}.type: '{name}' items are not supported (supported: message, "
            "function_call, function_call_output; reasoning items are skipped)")


def _add_turn(turns: list, role: str, blocks: list) -> None:
    """Append to the last turn when it has the same role, else start a turn."""
    if not blocks:
        return
    last = turns[-1] if turns else None
    if last is not None and last["role"] == role:
        last["content"].extend(blocks)
    else:
        turns.append({"role": role, "content": list(blocks)})


def _message(item: dict, where: str) -> tuple[str, list]:
    role = item.get("role")
    allowed = _PARTS_BY_ROLE.get(role) if isinstance(role, str) else None
    if allowed is None:
        raise ResponsesRequestError(f"{where}.role: must be one of user, assistant, system, "
                                    "developer")
    blocks = _parts(item.get("content"), where + ".content", allowed)
    if role == "user":
        return "user", blocks
    return ("system" if role in ("system", "developer") else role), [b for b in blocks if b["text"]]


def _function_call(item: dict, where: str) -> tuple[str, list]:
    call_id, name = item.get("call_id"), item.get("name")
    if not isinstance(call_id, str) or not call_id:
        raise ResponsesRequestError(f"{where}.call_id: must be a non-empty string")
    if not isinstance(name, str) or not name:
        raise ResponsesRequestError(f"{where}.name: must be a non-empty string")
    return "assistant", [{"type": "tool_use", "id": call_id, "name": name,
                          "input": _arguments(item.get("arguments"))}]


def _function_call_output(item: dict, where: str) -> tuple[str, list]:
    call_id = item.get("call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ResponsesRequestError(f"{where}.call_id: must be a non-empty string")
    output = item.get("output")
    block: dict = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(output, str):
        block["content"] = output
    elif isinstance(output, list):
        block["content"] = _parts(output, where + ".output", _USER_PARTS)
    else:
        raise ResponsesRequestError(f"{where}.output: must be a string or a list of content "
                                    "parts")
    return "user", [block]


_ITEMS: Dict[str, Callable[[dict, str], tuple]] = {
    "message": _message,
    "function_call": _function_call,
    "function_call_output": _function_call_output,
}


def _input_image(part: dict, where: str) -> dict:
    url = part.get("image_url")
    if url is None and part.get("file_id") is not None:
        raise ResponsesRequestError(f"{where}.file_id: uploaded files are not supported; send "
                                    "image_url as a data: URL")
    if not isinstance(url, str) or not url:
        raise ResponsesRequestError(f"{where}.image_url: must be a data: URL or an http(s) URL")
    try:
        return _image_part(part, where)
    except ChatRequestError as exc:  # chat's path names image_url.url; here it is a string
        message = str(exc).replace(f"{where}.image_url.url", f"{where}.image_url", 1)
        raise ResponsesRequestError(message) from None


def _input_file(part: dict, where: str) -> dict:
    data_url, file_url = part.get("file_data"), part.get("file_url")
    if isinstance(data_url, str):
        media_type, data = _data_url(data_url, where + ".file_data")
        if media_type != "application/pdf":
            raise ResponsesRequestError(f"{where}.file_data: only application/pdf files are "
                                        "supported")
        return {"type": "document",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    if isinstance(file_url, str) and file_url.startswith(("https://", "http://")):
        return {"type": "document", "source": {"type": "url", "url": file_url}}
    raise ResponsesRequestError(f"{where}.file_data: required (a data: URL); uploaded file ids "
                                "are not supported")


_SYSTEM_PARTS = {"input_text": _text_part}
_USER_PARTS = {"input_text": _text_part, "input_image": _input_image, "input_file": _input_file}
_ASSISTANT_PARTS = {"output_text": _text_part, "refusal": _refusal_part, "input_text": _text_part}
_PARTS_BY_ROLE = {"user": _USER_PARTS, "assistant": _ASSISTANT_PARTS,
                  "system": _SYSTEM_PARTS, "developer": _SYSTEM_PARTS}


# --------------------------------------------------------------------------- parameters


def _optional(request: dict, key: str, kind: type, what: str) -> Any:
    value = request.get(key)
    if value is not None and (not isinstance(value, kind) or
                              (kind is not bool and isinstance(value, bool))):
        raise ResponsesRequestError(f"{key}: must be {what}")
    return value


def _max_output_tokens(request: dict) -> int | None:
    value = request.get("max_output_tokens")
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ResponsesRequestError("max_output_tokens: must be a positive integer")
    return value


def _function_tools(tools: Any) -> tuple[list, list]:
    """(the client's function tools, types of the dropped hosted tools)."""
    if tools is None:
        return [], []
    if not isinstance(tools, list):
        raise ResponsesRequestError("tools: must be a list")
    functions, dropped = [], []
    for j, tool in enumerate(tools):
        where = f"tools.{j}"
        kind = tool.get("type") if isinstance(tool, dict) else None
        if kind == "function":
            functions.append(_checked_function(tool, where))
        elif kind in HOSTED_TOOLS:
            dropped.append(kind)
        elif isinstance(kind, str):
            raise ResponsesRequestError(
                f"{where}.type: '{kind[:40]}' tools are not supported (only 'function' tools; "
                "OpenAI-hosted tools such as web_search are left out)")
        else:
            raise ResponsesRequestError(f"{where}: must be an object with a string 'type'")
    return functions, dropped


def _checked_function(tool: dict, where: str) -> dict:
    if not isinstance(tool.get("name"), str) or not tool["name"]:
        raise ResponsesRequestError(f"{where}.name: must be a non-empty string")
    if tool.get("parameters") is not None and not isinstance(tool["parameters"], dict):
        raise ResponsesRequestError(f"{where}.parameters: must be an object")
    return tool


def _as_chat_tool(tool: dict) -> dict:
    return {"type": "function", "function": {"name": tool["name"],
                                             "description": tool.get("description"),
                                             "parameters": tool.get("parameters")}}


def _chat_tool_choice(choice: Any) -> Any:
    if choice is None or choice in ("auto", "none", "required"):
        return choice
    kind = choice.get("type") if isinstance(choice, dict) else None
    if kind == "function" and isinstance(choice.get("name"), str) and choice["name"]:
        return {"type": "function", "function": {"name": choice["name"]}}
    if kind in HOSTED_TOOLS:
        raise ResponsesRequestError(f"tool_choice: '{kind}' is an OpenAI-hosted tool, which "
                                    "this gateway does not offer")
    raise ResponsesRequestError("tool_choice: must be 'auto', 'none', 'required' or "
                                "{\"type\": \"function\", \"name\": ...}")


def _effort(reasoning: Any) -> str | None:
    if reasoning is None:
        return None
    if not isinstance(reasoning, dict):
        raise ResponsesRequestError("reasoning: must be an object")
    effort = reasoning.get("effort")
    if effort is None:
        return None
    if effort not in EFFORTS:
        raise ResponsesRequestError("reasoning.effort: must be one of " + ", ".join(EFFORTS))
    return EFFORT_ALIASES.get(effort, effort)


def _echo(request: dict, instructions: str | None, tools: list, parallel: bool | None) -> dict:
    """What a Responses ``response`` object repeats of its request (OpenAI's defaults)."""
    reasoning = request.get("reasoning") or {}
    text = request.get("text") or {}
    metadata = request.get("metadata")
    user = request.get("user")
    text_config: dict = {"format": {"type": "text"}}
    if isinstance(text.get("verbosity"), str):
        text_config["verbosity"] = text["verbosity"]
    return {
        "instructions": instructions,
        "max_output_tokens": request.get("max_output_tokens"),
        "metadata": dict(metadata) if isinstance(metadata, dict) else {},
        "parallel_tool_calls": parallel is not False,
        "reasoning": {"effort": reasoning.get("effort"), "summary": reasoning.get("summary")},
        "temperature": request.get("temperature", 1.0),
        "text": text_config,
        "tool_choice": request.get("tool_choice", "auto"),
        "tools": [dict(t) for t in tools],
        "top_p": request.get("top_p", 1.0),
        "user": user if isinstance(user, str) else None,
    }
