"""An OpenAI chat completions request -> an Anthropic Messages body (Claude on SAP AI Core).

:func:`translate_request` owns the mapping; the result goes through the same sanitizer
and upstream path as a ``/v1/messages`` body, so Bedrock quirks stay in ``sanitize.py``.

* ``system``/``developer`` messages before the first other message -> top-level ``system``
  text blocks, in order; later ones stay ``role: "system"`` messages, which the sanitizer
  folds into the neighbouring user turn (nothing is reordered).
* User content parts: ``text``; ``image_url`` with a ``data:`` URL -> base64 ``image`` block,
  with an http(s) URL -> ``url`` image source (which Bedrock refuses: the sanitizer answers
  400); ``file`` with a PDF ``file_data`` URL -> base64 ``document``. Audio, file ids and
  unknown part types are a 400.
* Assistant ``tool_calls`` -> ``tool_use`` blocks (``arguments`` parsed; ``""`` is ``{}``;
  invalid JSON or a non-object is a 400). ``role: "tool"`` messages -> ``tool_result`` blocks
  in one user turn per run of consecutive tool messages, a directly following user message
  joining that turn after its results.
* ``tools`` (function) -> ``input_schema`` tools; ``tool_choice`` auto/none/required/function
  -> auto/none/any/tool; ``parallel_tool_calls: false`` -> ``disable_parallel_tool_use``.
* ``max_completion_tokens`` (else ``max_tokens``) -> ``max_tokens``, :data:`DEFAULT_MAX_TOKENS`
  when absent (Anthropic requires it). ``temperature`` is capped at 1 (Anthropic's range is
  0..1, OpenAI's 0..2). ``stop`` -> ``stop_sequences`` without whitespace-only entries
  (Anthropic rejects them). ``user`` -> ``metadata.user_id``.
* ``reasoning_effort`` low/medium/high -> ``thinking`` with :data:`EFFORT_BUDGETS`; without a
  client maximum ``max_tokens`` becomes the default plus the budget, with one the budget stays
  below it (OpenAI counts reasoning inside ``max_completion_tokens``) and thinking is left out
  when less than 1024 tokens remain. It is also left out when the last assistant message
  calls tools: OpenAI clients cannot send its thinking back, which Anthropic requires then.
* ``n`` other than 1, legacy ``functions``/``function_call`` and ``role: "function"`` are a
  400; other unknown fields are ignored and listed in :attr:`ChatRequest.ignored`.

Errors are :class:`ChatRequestError` (the route answers 400 in OpenAI's shape) naming the
field's path. Pure: no Flask, no requests, no configuration, no logging; never mutates input.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from app.translate.gpt.response import tool_input

__all__ = ["ChatRequest", "ChatRequestError", "DEFAULT_MAX_TOKENS", "EFFORT_BUDGETS",
           "translate_request"]

#: ``max_tokens`` sent when the client gives none (Anthropic requires one; OpenAI does not).
DEFAULT_MAX_TOKENS = 4096
#: Thinking budget per ``reasoning_effort``; ``none``/``minimal`` mean no thinking.
EFFORT_BUDGETS = {"low": 1024, "medium": 4096, "high": 16384}
NO_REASONING = frozenset({"none", "minimal"})
MIN_THINKING_BUDGET = 1024

#: Top-level fields this module reads or knowingly rejects; anything else is ignored.
KNOWN_FIELDS = frozenset({
    "model", "messages", "stream", "stream_options", "max_tokens", "max_completion_tokens",
    "temperature", "top_p", "stop", "user", "n", "tools", "tool_choice", "parallel_tool_calls",
    "reasoning_effort", "functions", "function_call",
})

_IMAGE_TYPES = ("image/jpeg", "image/png", "image/gif", "image/webp")


class ChatRequestError(ValueError):
    """The request cannot be translated; the message names the field (a client 400)."""


@dataclass(frozen=True)
class ChatRequest:
    body: dict  # the Anthropic Messages body (``model`` is the client's id)
    model: str
    stream: bool
    include_usage: bool  # ``stream_options.include_usage``
    ignored: tuple  # top-level fields with no Anthropic counterpart


def translate_request(chat: Any) -> ChatRequest:
    """Validate an OpenAI chat body and build the Anthropic Messages body."""
    if not isinstance(chat, dict):
        raise ChatRequestError("request body must be a JSON object")
    model = chat.get("model")
    if not isinstance(model, str) or not model.strip() or len(model) > 256:
        raise ChatRequestError("model: field required (a string)")
    for legacy in ("functions", "function_call"):
        if chat.get(legacy) is not None:
            raise ChatRequestError(f"{legacy}: the legacy function-calling fields are not "
                                   "supported; use tools and tool_choice")
    n = chat.get("n")
    if n is not None and n != 1:
        raise ChatRequestError("n: only n=1 is supported (Claude returns one choice)")
    stream = _optional(chat, "stream", bool, "a boolean") or False
    options = _optional(chat, "stream_options", dict, "an object") or {}
    include_usage = options.get("include_usage") is True

    system, messages = _messages(chat.get("messages"))
    body: dict = {"model": model}
    if system:
        body["system"] = system
    body["messages"] = messages
    max_tokens = _max_tokens(chat)
    body["max_tokens"] = max_tokens if max_tokens is not None else DEFAULT_MAX_TOKENS
    _sampling(chat, body)
    _tools(chat, body)
    user = chat.get("user")
    if isinstance(user, str) and user:
        body["metadata"] = {"user_id": user}
    _reasoning(chat, body, client_max=max_tokens)
    body["stream"] = stream
    ignored = tuple(sorted(k for k in chat if k not in KNOWN_FIELDS))
    return ChatRequest(body, model, stream, include_usage, ignored)


# --------------------------------------------------------------------------- messages


def _messages(items: Any) -> tuple[list, list]:
    if not isinstance(items, list) or not items:
        raise ChatRequestError("messages: field required (a non-empty list)")
    system: list = []
    out: list = []
    leading = True
    tool_turn: list | None = None  # content of the user turn collecting tool results
    for i, message in enumerate(items):
        where = f"messages.{i}"
        if not isinstance(message, dict):
            raise ChatRequestError(f"{where}: must be an object")
        role = message.get("role")
        content = message.get("content")
        if role in ("system", "developer"):
            blocks = _text_blocks(content, where + ".content")
            if leading:
                system.extend(blocks)
            elif blocks:
                out.append({"role": "system", "content": blocks})  # folded by the sanitizer
                tool_turn = None
            continue
        leading = False
        if role == "tool":
            block = _tool_result(message, where)
            if tool_turn is None:
                tool_turn = [block]
                out.append({"role": "user", "content": tool_turn})
            else:
                tool_turn.append(block)
        elif role == "user":
            blocks = _parts(content, where + ".content", _USER_PARTS)
            if tool_turn is not None:
                tool_turn.extend(blocks)  # after the results, as Anthropic wants it
                tool_turn = None
            else:
                out.append({"role": "user", "content": blocks})
        elif role == "assistant":
            out.append({"role": "assistant", "content": _assistant_blocks(message, where)})
            tool_turn = None
        elif role == "function":
            raise ChatRequestError(f"{where}.role: legacy 'function' messages are not "
                                   "supported; use tool_calls and role 'tool'")
        else:
            raise ChatRequestError(f"{where}.role: must be one of system, developer, user, "
                                   "assistant, tool")
    if not out:
        raise ChatRequestError("messages: at least one user message is required besides "
                               "system messages")
    return system, out


def _text_blocks(content: Any, where: str) -> list:
    """System, developer and tool text: a string or a list of text parts."""
    return [b for b in _parts(content, where, _TEXT_PARTS) if b.get("text")]


def _parts(content: Any, where: str, allowed: dict) -> list:
    if isinstance(content, str):
        return [{"type": "text", "text": content}]
    if content is None:
        return []
    if not isinstance(content, list):
        raise ChatRequestError(f"{where}: must be a string or a list of content parts")
    blocks = []
    for j, part in enumerate(content):
        path = f"{where}.{j}"
        if not isinstance(part, dict) or not isinstance(part.get("type"), str):
            raise ChatRequestError(f"{path}: must be an object with a string 'type'")
        convert = allowed.get(part["type"])
        if convert is None:
            raise ChatRequestError(f"{path}.type: '{part['type'][:40]}' parts are not "
                                   f"supported here (supported: {', '.join(allowed)})")
        blocks.append(convert(part, path))
    return blocks


def _text_part(part: dict, where: str) -> dict:
    text = part.get("text")
    if not isinstance(text, str):
        raise ChatRequestError(f"{where}.text: must be a string")
    return {"type": "text", "text": text}


def _refusal_part(part: dict, where: str) -> dict:
    text = part.get("refusal")
    if not isinstance(text, str):
        raise ChatRequestError(f"{where}.refusal: must be a string")
    return {"type": "text", "text": text}


def _image_part(part: dict, where: str) -> dict:
    image = part.get("image_url")
    url = image.get("url") if isinstance(image, dict) else image
    if not isinstance(url, str) or not url:
        raise ChatRequestError(f"{where}.image_url.url: must be a string")
    if url.startswith("data:"):
        media_type, data = _data_url(url, where + ".image_url.url")
        if media_type not in _IMAGE_TYPES:
            raise ChatRequestError(f"{where}.image_url.url: image type '{media_type[:40]}' is "
                                   f"not supported (supported: {', '.join(_IMAGE_TYPES)})")
        return {"type": "image",
                "source": {"type": "base64", "media_type": media_type, "data": data}}
    if url.startswith(("https://", "http://")):
        return {"type": "image", "source": {"type": "url", "url": url}}
    raise ChatRequestError(f"{where}.image_url.url: must be a data: URL or an http(s) URL")


def _file_part(part: dict, where: str) -> dict:
    file = part.get("file")
    data_url = file.get("file_data") if isinstance(file, dict) else None
    if not isinstance(data_url, str):
        raise ChatRequestError(f"{where}.file.file_data: required (a data: URL); uploaded "
                               "file ids are not supported")
    media_type, data = _data_url(data_url, where + ".file.file_data")
    if media_type != "application/pdf":
        raise ChatRequestError(f"{where}.file.file_data: only application/pdf files are "
                               "supported")
    return {"type": "document",
            "source": {"type": "base64", "media_type": media_type, "data": data}}


def _data_url(url: str, where: str) -> tuple[str, str]:
    """``data:<media type>;base64,<data>`` -> (media type, data)."""
    header, sep, data = url[5:].partition(",")
    params = header.split(";")
    if not sep or "base64" not in params[1:] or not data:
        raise ChatRequestError(f"{where}: must be a base64 data: URL "
                               "(data:<media type>;base64,<data>)")
    return params[0].strip().lower(), data


_TEXT_PARTS = {"text": _text_part}
_USER_PARTS = {"text": _text_part, "image_url": _image_part, "file": _file_part}
_ASSISTANT_PARTS = {"text": _text_part, "refusal": _refusal_part}


def _assistant_blocks(message: dict, where: str) -> list:
    if message.get("function_call") is not None:
        raise ChatRequestError(f"{where}.function_call: legacy function calls are not "
                               "supported; use tool_calls")
    blocks = [b for b in _parts(message.get("content"), where + ".content", _ASSISTANT_PARTS)
              if b["text"]]
    calls = message.get("tool_calls")
    if calls is None:
        return blocks
    if not isinstance(calls, list):
        raise ChatRequestError(f"{where}.tool_calls: must be a list")
    for k, call in enumerate(calls):
        blocks.append(_tool_use(call, f"{where}.tool_calls.{k}"))
    return blocks


def _tool_use(call: Any, where: str) -> dict:
    function = call.get("function") if isinstance(call, dict) else None
    if not isinstance(function, dict) or not isinstance(call.get("id"), str) or not call["id"]:
        raise ChatRequestError(f"{where}: needs a string 'id' and a 'function' object")
    name = function.get("name")
    if not isinstance(name, str) or not name:
        raise ChatRequestError(f"{where}.function.name: must be a non-empty string")
    return {"type": "tool_use", "id": call["id"], "name": name,
            "input": _arguments(function.get("arguments"))}


def _arguments(raw: Any) -> dict:
    """A history tool call's ``arguments`` as the ``tool_use.input`` object. Arguments that
    are not a JSON object (a call cut off by ``max_tokens`` and echoed back as it was
    streamed) become ``{"arguments": <text>}``, as answers do: the conversation goes on
    instead of failing on every later turn."""
    return tool_input(raw)


def _tool_result(message: dict, where: str) -> dict:
    call_id = message.get("tool_call_id")
    if not isinstance(call_id, str) or not call_id:
        raise ChatRequestError(f"{where}.tool_call_id: must be a non-empty string")
    content = message.get("content")
    block: dict = {"type": "tool_result", "tool_use_id": call_id}
    if isinstance(content, str):
        block["content"] = content
    else:
        block["content"] = _parts(content, where + ".content", _USER_PARTS)
    return block


# --------------------------------------------------------------------------- parameters


def _optional(chat: dict, key: str, kind: type, what: str) -> Any:
    value = chat.get(key)
    if value is not None and (not isinstance(value, kind) or
                              (kind is not bool and isinstance(value, bool))):
        raise ChatRequestError(f"{key}: must be {what}")
    return value


def _number(chat: dict, key: str) -> float | None:
    value = chat.get(key)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ChatRequestError(f"{key}: must be a number")
    return value


def _max_tokens(chat: dict) -> int | None:
    for key in ("max_completion_tokens", "max_tokens"):
        value = chat.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ChatRequestError(f"{key}: must be a positive integer")
        return value
    return None


def _sampling(chat: dict, body: dict) -> None:
    temperature = _number(chat, "temperature")
    if temperature is not None:
        if temperature < 0:
            raise ChatRequestError("temperature: must be between 0 and 2")
        body["temperature"] = min(temperature, 1)
    top_p = _number(chat, "top_p")
    if top_p is not None:
        body["top_p"] = top_p
    stop = chat.get("stop")
    if stop is None:
        return
    if isinstance(stop, str):
        stop = [stop]
    if not isinstance(stop, list) or not all(isinstance(s, str) for s in stop):
        raise ChatRequestError("stop: must be a string or a list of strings")
    kept = [s for s in stop if s.strip()]
    if kept:
        body["stop_sequences"] = kept


def _tools(chat: dict, body: dict) -> None:
    tools = chat.get("tools")
    if tools is None or tools == []:
        return  # tool_choice without tools means nothing to Anthropic: left out
    if not isinstance(tools, list):
        raise ChatRequestError("tools: must be a list")
    out = []
    for j, tool in enumerate(tools):
        where = f"tools.{j}"
        if not isinstance(tool, dict) or tool.get("type", "function") != "function":
            raise ChatRequestError(f"{where}.type: only 'function' tools are supported")
        function = tool.get("function")
        if not isinstance(function, dict) or not isinstance(function.get("name"), str) \
                or not function["name"]:
            raise ChatRequestError(f"{where}.function.name: must be a non-empty string")
        schema = function.get("parameters")
        if schema is None:
            schema = {"type": "object", "properties": {}}
        elif not isinstance(schema, dict):
            raise ChatRequestError(f"{where}.function.parameters: must be an object")
        entry = {"name": function["name"]}
        if isinstance(function.get("description"), str) and function["description"]:
            entry["description"] = function["description"]
        entry["input_schema"] = schema
        out.append(entry)
    body["tools"] = out
    choice = _tool_choice(chat.get("tool_choice"))
    if chat.get("parallel_tool_calls") is False and (choice or {}).get("type") != "none":
        choice = {**(choice or {"type": "auto"}), "disable_parallel_tool_use": True}
    if choice is not None:
        body["tool_choice"] = choice


def _tool_choice(choice: Any) -> dict | None:
    if choice is None:
        return None
    if choice in ("auto", "none"):
        return {"type": choice}
    if choice == "required":
        return {"type": "any"}
    if isinstance(choice, dict) and choice.get("type") == "function":
        function = choice.get("function")
        name = function.get("name") if isinstance(function, dict) else None
        if isinstance(name, str) and name:
            return {"type": "tool", "name": name}
    raise ChatRequestError("tool_choice: must be 'auto', 'none', 'required' or "
                           "{\"type\": \"function\", \"function\": {\"name\": ...}}")


def _reasoning(chat: dict, body: dict, client_max: int | None) -> None:
    effort = chat.get("reasoning_effort")
    if effort is None or effort in NO_REASONING:
        return
    budget = EFFORT_BUDGETS.get(effort) if isinstance(effort, str) else None
    if budget is None:
        raise ChatRequestError("reasoning_effort: must be one of none, minimal, low, medium, "
                               "high")
    if client_max is None:
        body["max_tokens"] = DEFAULT_MAX_TOKENS + budget
    else:
        budget = min(budget, client_max - 1)
        if budget < MIN_THINKING_BUDGET:
            return
    body["thinking"] = {"type": "enabled", "budget_tokens": budget}

