"""Bedrock Claude stream events -> OpenAI Responses server-sent events.

:class:`ResponsesStream` is one stream's state machine with the
:class:`app.streaming.StreamTranslator` protocol: ``feed(data)`` per upstream SSE event
(the ``data:`` of SAP AI Core's ``/invoke-with-response-stream``, one Anthropic event JSON
each), ``finish()`` at EOF, ``error_event()`` for the relay's own failures. What it writes:

* every frame is ``event: <type>`` + ``data: <one-line JSON>``; every event carries ``type``
  and ``sequence_number`` (0, 1, 2, ... over the whole stream);
* ``message_start`` -> ``response.created`` and ``response.in_progress`` (the response
  object with ``status: "in_progress"``, no output, no usage);
* each content block -> one output item with its own ``output_index`` (the items of
  :mod:`app.translate.openai.responses_response`, same ids):

  - ``text``: ``response.output_item.added`` (a ``message``), ``response.content_part.added``,
    one ``response.output_text.delta`` per non-empty ``text_delta`` as it arrives, then at
    the block stop ``response.output_text.done``, ``response.content_part.done``,
    ``response.output_item.done``. A text block opens only with its first text, so an empty
    one makes no item (as the non-streaming path drops it);
  - ``tool_use``: ``response.output_item.added`` (a ``function_call``, ``call_id`` = the
    tool_use id, ``arguments: ""``), one ``response.function_call_arguments.delta`` per
    ``input_json_delta`` fragment as it comes, then ``response.function_call_arguments.done``
    and ``response.output_item.done``; a call that got no fragment gets a ``"{}"`` delta at
    its stop, so the concatenated arguments always parse;
  - ``thinking``: a ``reasoning`` item whose summary streams as
    ``response.reasoning_summary_part.added`` / ``response.reasoning_summary_text.delta`` /
    ``.done`` / ``response.reasoning_summary_part.done`` (signatures are dropped; opens with
    its first text like a text block);
* ``message_stop`` -> ``response.completed`` with the whole response object (status, output,
  usage), equal to what ``response_from_message`` answers for the same message (function
  call ``arguments`` are the streamed text itself). A stream cut by ``max_tokens`` also ends
  with ``response.completed`` (``status: "incomplete"``): Codex CLI and the SDK's stream
  helper only finalise a turn on ``response.completed``;
* a failure (an upstream ``error`` event, a non-JSON or typeless error event, EOF before
  ``message_stop``, the relay's ``error_event``) -> ``response.created`` if it was not sent
  yet, an ``error`` event, then ``response.failed`` (status ``failed``, ``error.code``
  ``rate_limit_exceeded`` or ``server_error``, the items finished so far, the usage so far);
  everything after it is ignored. The ``error`` event has the documented flat ``code``/
  ``message``/``param`` and, like the live API, the same under ``error``: the ``openai`` SDK
  raises ``APIError`` only on a nested ``error`` object. Codex skips ``error`` events and
  reads the failure from ``response.failed``;
* an upstream ``ping`` -> an SSE comment (:data:`PING`, also the relay's keep-alive).

Pure and stdlib-only apart from ``app.wire``: no Flask, no requests, no configuration.
"""

from __future__ import annotations

from typing import Any, Dict, List, Optional

from app.translate.bedrock_stream import classify_error, clean_error_message
from app.translate.openai.event_stream import (ERROR_TYPES, PING, AnthropicEventStream,
                                               block_index)
from app.translate.openai.responses_request import ResponsesRequest
from app.translate.openai.responses_response import (
    function_call_item,
    item_id,
    message_item,
    output_text_part,
    reasoning_item,
    response_object,
    response_status,
    responses_usage,
    summary_part,
)
from app.wire.jsoncodec import dumps, dumps_str
from app.wire.sse import encode_event

__all__ = ["PING", "ResponsesStream", "error_code"]

_TEXT, _TOOL, _THINKING = "text", "tool", "thinking"


def error_code(error_type: str) -> str:
    """Anthropic error type -> ``response.error.code`` (one of the values OpenAI defines)."""
    return "rate_limit_exceeded" if error_type == "rate_limit_error" else "server_error"


class _Block:
    """One Anthropic content block on its way to becoming an output item."""

    __slots__ = ("kind", "output_index", "item_id", "parts", "call_id", "name")

    def __init__(self, kind: str, call_id: Any = None, name: Any = None) -> None:
        self.kind = kind
        self.output_index: Optional[int] = None  # None until the item is announced
        self.item_id = ""
        self.parts: List[str] = []  # text, thinking or argument fragments sent so far
        self.call_id = call_id
        self.name = name


class ResponsesStream(AnthropicEventStream):
    """Per-stream translator (the shared rules are :class:`AnthropicEventStream`'s); all
    state lives on the instance.

    Read by the caller: ``usage`` (Anthropic keys, for the request log and budgets),
    ``done`` (``response.completed`` written), ``failed`` (``response.failed`` written).
    """

    __slots__ = ("_model", "_response_id", "_created_at", "_request", "_sequence",
                 "_announced", "_blocks", "_items")

    def __init__(self, model: str, response_id: str, created_at: int,
                 request: ResponsesRequest) -> None:
        super().__init__()
        self._model = model
        self._response_id = response_id
        self._created_at = created_at
        self._request = request
        self._sequence = 0
        self._announced = False  # response.created written
        self._blocks: Dict[int, _Block] = {}  # Anthropic block index -> open block
        self._items: List[Optional[dict]] = []  # by output_index; None while still open

    # -- output --------------------------------------------------------------------------

    def _event(self, kind: str, **fields: Any) -> bytes:
        payload = {"type": kind, "sequence_number": self._sequence, **fields}
        self._sequence += 1
        return encode_event(kind, dumps(payload))

    def _response(self, status: str, **fields: Any) -> dict:
        return response_object(response_id=self._response_id, created_at=self._created_at,
                               model=self._model, request=self._request, status=status,
                               **fields)

    def _created(self) -> bytes:
        self._announced = True
        return self._event("response.created",
                           response=self._response("in_progress", output=[], usage=None))

    def _finished_items(self) -> list:
        return [item for item in self._items if item is not None]

    def _fail(self, message: str, error_type: Optional[str]) -> bytes:
        message = clean_error_message(message) or "Upstream stream failed"
        error_type = error_type or classify_error(message)
        code = error_code(error_type)
        self.failed = True
        self._closed = True
        out = b"" if self._announced else self._created()
        out += self._event("error", code=code, message=message, param=None,
                           error={"type": ERROR_TYPES.get(error_type, "server_error"),
                                  "code": code, "message": message, "param": None})
        return out + self._event("response.failed", response=self._response(
            "failed", output=self._finished_items(), usage=responses_usage(self.usage),
            error={"code": code, "message": message}))

    # -- items ---------------------------------------------------------------------------

    def _open(self, block: _Block) -> bytes:
        index = len(self._items)
        self._items.append(None)
        block.output_index = index
        if block.kind == _TEXT:
            block.item_id = item_id("msg", self._response_id, index)
            return (self._event("response.output_item.added", output_index=index,
                                item=message_item(block.item_id, [], "in_progress"))
                    + self._event("response.content_part.added", item_id=block.item_id,
                                  output_index=index, content_index=0,
                                  part=output_text_part("")))
        if block.kind == _THINKING:
            block.item_id = item_id("rs", self._response_id, index)
            return (self._event("response.output_item.added", output_index=index,
                                item=reasoning_item(block.item_id, []))
                    + self._event("response.reasoning_summary_part.added",
                                  item_id=block.item_id, output_index=index, summary_index=0,
                                  part=summary_part("")))
        block.item_id = item_id("fc", self._response_id, index)
        return self._event("response.output_item.added", output_index=index,
                           item=function_call_item(block.item_id, block.call_id, block.name,
                                                   "", "in_progress"))

    def _delta(self, block: _Block, fragment: str) -> bytes:
        """Stream one non-empty fragment, announcing the item first if it is not yet."""
        out = self._open(block) if block.output_index is None else b""
        block.parts.append(fragment)
        where = {"item_id": block.item_id, "output_index": block.output_index}
        if block.kind == _TEXT:
            return out + self._event("response.output_text.delta", **where, content_index=0,
                                     delta=fragment, logprobs=[])
        if block.kind == _THINKING:
            return out + self._event("response.reasoning_summary_text.delta", **where,
                                     summary_index=0, delta=fragment)
        return out + self._event("response.function_call_arguments.delta", **where,
                                 delta=fragment)

    def _close(self, block: _Block) -> bytes:
        if block.output_index is None:
            return b""  # a text or thinking block that never got text: no item
        out = b""
        if block.kind == _TOOL and not block.parts:
            out = self._delta(block, "{}")
        text = "".join(block.parts)
        where = {"item_id": block.item_id, "output_index": block.output_index}
        if block.kind == _TEXT:
            part = output_text_part(text)
            item = message_item(block.item_id, [part])
            out += (self._event("response.output_text.done", **where, content_index=0,
                                text=text, logprobs=[])
                    + self._event("response.content_part.done", **where, content_index=0,
                                  part=part))
        elif block.kind == _THINKING:
            part = summary_part(text)
            item = reasoning_item(block.item_id, [part])
            out += (self._event("response.reasoning_summary_text.done", **where,
                                summary_index=0, text=text)
                    + self._event("response.reasoning_summary_part.done", **where,
                                  summary_index=0, part=part))
        else:
            item = function_call_item(block.item_id, block.call_id, block.name, text)
            out += self._event("response.function_call_arguments.done", **where, arguments=text)
        self._items[block.output_index] = item
        return out + self._event("response.output_item.done",
                                 output_index=block.output_index, item=item)

    # -- upstream events -----------------------------------------------------------------

    def _start(self) -> bytes:
        return self._created() + self._event(
            "response.in_progress", response=self._response("in_progress", output=[], usage=None))

    def _on_block_start(self, event: dict) -> bytes:
        content = event.get("content_block")
        kind = content.get("type") if isinstance(content, dict) else None
        if kind == "text":
            block, first = _Block(_TEXT), content.get("text")
        elif kind == "thinking":
            block, first = _Block(_THINKING), content.get("thinking")
        elif kind == "tool_use":
            block = _Block(_TOOL, content.get("id"), content.get("name"))
            first = dumps_str(content["input"]) if content.get("input") else ""
        else:
            return b""  # redacted thinking, server tools: nothing a Responses client can use
        index = block_index(event)
        previous = self._blocks.pop(index, None)  # a start without its stop: close it first
        out = self._close(previous) if previous is not None else b""
        self._blocks[index] = block
        if kind == "tool_use":
            out += self._open(block)
        if first and isinstance(first, str):
            out += self._delta(block, first)
        return out

    def _on_block_delta(self, event: dict) -> bytes:
        delta = event.get("delta")
        block = self._blocks.get(block_index(event))
        if not isinstance(delta, dict) or block is None:
            return b""
        field = _DELTA_FIELDS.get((delta.get("type"), block.kind))
        fragment = delta.get(field) if field else None
        if not fragment or not isinstance(fragment, str):
            return b""  # empty fragments, signature_delta, citations_delta
        return self._delta(block, fragment)

    def _on_block_stop(self, event: dict) -> bytes:
        block = self._blocks.pop(block_index(event), None)
        return self._close(block) if block is not None else b""

    def _complete(self) -> bytes:
        out = b"".join([self._close(block) for block in self._blocks.values()])
        self._blocks.clear()
        status, incomplete = response_status(self.stop_reason)
        return out + self._event("response.completed", response=self._response(
            status, output=self._finished_items(), usage=responses_usage(self.usage),
            incomplete_details=incomplete))


#: (delta type, block kind) -> the delta's field holding the fragment.
_DELTA_FIELDS = {
    ("text_delta", _TEXT): "text",
    ("thinking_delta", _THINKING): "thinking",
    ("input_json_delta", _TOOL): "partial_json",
}
