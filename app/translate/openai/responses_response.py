"""A whole Anthropic message -> an OpenAI Responses ``response`` object; its items and usage.

:func:`response_from_message` builds the non-streaming answer. The builders it uses
(:func:`response_object`, the item builders, :func:`item_id`, :func:`responses_usage`) are
shared with :class:`app.translate.openai.responses_stream.ResponsesStream`, so a streamed
answer ends with the very object the non-streaming path would have sent.

* One output item per content block, in order, ``output_index`` = position in ``output``:
  ``text`` -> a ``message`` item with one ``output_text`` part (empty text blocks are left
  out); ``tool_use`` -> a ``function_call`` item, ``call_id`` = the ``tool_use`` id,
  ``arguments`` the input as a JSON string; ``thinking`` -> a ``reasoning`` item whose
  ``summary`` holds the thinking text (Claude's thinking is itself a summary; there is no
  ``encrypted_content``: signatures and redacted thinking are never sent, and ``reasoning``
  items coming back are skipped). Item ids are ``msg_``/``fc_``/``rs_`` + the response id
  without ``resp_`` + ``_<output_index>``, so both paths name items alike.
* ``status``: ``completed``, or ``incomplete`` with ``incomplete_details.reason``
  ``max_output_tokens`` (``max_tokens``, ``model_context_window_exceeded``) or
  ``content_filter`` (``refusal``). Items are always ``completed``.
* ``usage.input_tokens`` = input + cache read + cache write tokens (OpenAI counts the whole
  prompt), ``input_tokens_details`` = ``cached_tokens`` (cache reads) and
  ``cache_write_tokens``; ``output_tokens_details.reasoning_tokens`` is 0 (Anthropic does
  not count thinking apart).
* The request's parameters are echoed (:attr:`ResponsesRequest.echo`); ``store`` is
  ``false`` (nothing is kept), ``previous_response_id`` ``null``, ``truncation``
  ``disabled``.

Pure: no Flask, no requests, no configuration; never mutates its input.
"""

from __future__ import annotations

from typing import Any, Optional

from app.translate.bedrock_stream import usage_from_message
from app.translate.openai.chat_response import chat_usage
from app.translate.openai.responses_request import ResponsesRequest
from app.wire.jsoncodec import dumps_str

__all__ = ["INCOMPLETE_REASONS", "function_call_item", "item_id", "message_item",
           "output_text_part", "reasoning_item", "response_from_message", "response_object",
           "response_status", "responses_usage", "summary_part"]

#: Anthropic ``stop_reason`` -> ``incomplete_details.reason``; any other ends ``completed``.
INCOMPLETE_REASONS = {
    "max_tokens": "max_output_tokens",
    "model_context_window_exceeded": "max_output_tokens",
    "refusal": "content_filter",
}


def response_status(stop_reason: Any) -> tuple[str, Optional[dict]]:
    """(``status``, ``incomplete_details``) for an Anthropic stop reason."""
    reason = INCOMPLETE_REASONS.get(stop_reason) if isinstance(stop_reason, str) else None
    if reason is None:
        return "completed", None
    return "incomplete", {"reason": reason}


def responses_usage(usage: Any) -> dict:
    """Anthropic usage counts -> Responses ``usage``."""
    counts = chat_usage(usage)
    cache_write = usage_from_message({"usage": usage})["cache_creation_input_tokens"]
    return {
        "input_tokens": counts["prompt_tokens"],
        "input_tokens_details": {"cached_tokens": counts["prompt_tokens_details"]["cached_tokens"],
                                 "cache_write_tokens": cache_write},
        "output_tokens": counts["completion_tokens"],
        "output_tokens_details": {"reasoning_tokens": 0},
        "total_tokens": counts["total_tokens"],
    }


# --------------------------------------------------------------------------- items


def item_id(prefix: str, response_id: str, output_index: int) -> str:
    return f"{prefix}_{response_id.removeprefix('resp_')}_{output_index}"


def output_text_part(text: str) -> dict:
    return {"type": "output_text", "text": text, "annotations": [], "logprobs": []}


def summary_part(text: str) -> dict:
    return {"type": "summary_text", "text": text}


def message_item(item_id: str, content: list, status: str = "completed") -> dict:
    return {"id": item_id, "type": "message", "role": "assistant", "status": status,
            "content": content}


def function_call_item(item_id: str, call_id: Any, name: Any, arguments: str,
                       status: str = "completed") -> dict:
    return {"id": item_id, "type": "function_call", "status": status, "call_id": call_id,
            "name": name, "arguments": arguments}


def reasoning_item(item_id: str, summary: list) -> dict:
    return {"id": item_id, "type": "reasoning", "summary": summary}


def _output_items(content: Any, response_id: str) -> list:
    output: list = []
    for block in content if isinstance(content, list) else ():
        if not isinstance(block, dict):
            continue
        kind = block.get("type")
        if kind == "text" and isinstance(block.get("text"), str) and block["text"]:
            output.append(message_item(item_id("msg", response_id, len(output)),
                                       [output_text_part(block["text"])]))
        elif kind == "thinking" and isinstance(block.get("thinking"), str) and block["thinking"]:
            output.append(reasoning_item(item_id("rs", response_id, len(output)),
                                         [summary_part(block["thinking"])]))
        elif kind == "tool_use":
            output.append(function_call_item(item_id("fc", response_id, len(output)),
                                             block.get("id"), block.get("name"),
                                             dumps_str(block.get("input") or {})))
    return output  # redacted thinking, server tools: nothing a Responses client can use


# --------------------------------------------------------------------------- response


def response_object(*, response_id: str, created_at: int, model: str,
                    request: ResponsesRequest, status: str, output: list,
                    usage: Optional[dict], error: Optional[dict] = None,
                    incomplete_details: Optional[dict] = None) -> dict:
    """The ``response`` object, in any state (``in_progress`` while streaming)."""
    echo = request.echo
    return {
        "id": response_id,
        "object": "response",
        "created_at": created_at,
        "status": status,
        "error": error,
        "incomplete_details": incomplete_details,
        "instructions": echo["instructions"],
        "max_output_tokens": echo["max_output_tokens"],
        "model": model,
        "output": output,
        "parallel_tool_calls": echo["parallel_tool_calls"],
        "previous_response_id": None,
        "reasoning": echo["reasoning"],
        "store": False,
        "temperature": echo["temperature"],
        "text": echo["text"],
        "tool_choice": echo["tool_choice"],
        "tools": echo["tools"],
        "top_p": echo["top_p"],
        "truncation": "disabled",
        "usage": usage,
        "user": echo["user"],
        "metadata": echo["metadata"],
    }


def response_from_message(message: dict, *, model: str, response_id: str, created_at: int,
                          request: ResponsesRequest) -> dict:
    """The ``response`` for an Anthropic message (``model`` is the client's id)."""
    status, incomplete = response_status(message.get("stop_reason"))
    return response_object(response_id=response_id, created_at=created_at, model=model,
                           request=request, status=status,
                           output=_output_items(message.get("content"), response_id),
                           usage=responses_usage(message.get("usage")),
                           incomplete_details=incomplete)
