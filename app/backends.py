"""Which upstream family answers an Anthropic Messages ("pivot") request, and how.

Every client dialect is first turned into an Anthropic Messages body (``/v1/messages``
as it comes, ``/v1/chat/completions`` and ``/v1/responses`` by their translators).
:func:`open_pivot` sends that body to the resolved SAP model's family through the
one failover loop (:func:`app.forwarding.open_exchange`):

* Claude on Bedrock: the body as it is, through the Claude sanitizer and self-healing
  (:mod:`app.claude`); answers are already Bedrock-shaped.
* GPT on Azure OpenAI: the body normalised by the sanitizer with a neutral profile
  (``role: "system"`` messages folded, server tools and Claude-only fields removed),
  then translated to a chat body (:mod:`app.translate.gpt`); chunks and answers come
  back as Bedrock-shaped events and messages.
* Gemini on Vertex: the same normalisation, then a GenerateContent body
  (:mod:`app.translate.gemini`), and back the same way.

The caller then renders the Bedrock-shaped events or message in its own dialect with
the same client-side translators whatever family answered. No Flask here.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass
from typing import Callable, Iterable

import requests

from app import errors
from app.claude import ClaudePlan
from app.forwarding import Exchange, open_exchange, post
from app.model_names import family_of
from app.runtime import Runtime
from app.streaming import AdaptedStream, StreamTranslator, UpstreamAdapter
from app.translate.gemini.request import GeminiRequestError, gemini_from_anthropic, gemini_path
from app.translate.gemini.response import message_from_gemini
from app.translate.gemini.stream import GeminiStreamDecoder, GeminiToAnthropic
from app.translate.gpt.request import GptRequestError, api_path, chat_from_anthropic
from app.translate.gpt.response import message_from_chat_completion
from app.translate.gpt.stream import ChatChunksToAnthropic
from app.translate.profiles import PIVOT_PROFILE
from app.translate.sanitize import SanitizeError, sanitize_bedrock
from app.translate.token_count import estimate_input_tokens
from app.upstream.deployments import Target
from app.upstream.events import EventDecoder
from app.wire.jsoncodec import dumps

class StaticPlan:
    """A call whose body and path are the same for every deployment of the model;
    ``decoder`` makes the reader of its stream's framing (default: server-sent events)."""

    __slots__ = ("suffix", "payload", "repairs", "decoder")

    def __init__(self, suffix: str, payload: bytes, repairs: Iterable[str] = (),
                 decoder: Callable[[], EventDecoder] | None = None) -> None:
        self.suffix = suffix
        self.payload = payload
        self.repairs = list(repairs)
        self.decoder = decoder

    def stream_decoder(self) -> EventDecoder | None:
        return self.decoder() if self.decoder is not None else None

    def send(self, rt: Runtime, target: Target, stream: bool) -> tuple[requests.Response,
                                                                        list[str]]:
        return post(rt, target, self.suffix, self.payload, stream), list(self.repairs)

    def started(self, data: str) -> bool:
        return not is_error_event(data)


def is_error_event(data: str) -> bool:
    """An Azure or Google stream event that is only an error: ``{"error": {...}}``."""
    return data.lstrip().startswith('{"error"') or '"error":' in data[:20]


@dataclass
class PivotCall:
    """An open upstream call for a pivot request, with what reads its answer back."""

    exchange: Exchange
    family: str
    _adapter: Callable[[], UpstreamAdapter] | None = None
    _message: Callable[[dict], dict] | None = None

    def stream_translator(self, client_side: StreamTranslator) -> StreamTranslator:
        """``client_side`` reads Bedrock-style events; put the family's adapter before it."""
        if self._adapter is None:
            return client_side
        return AdaptedStream(self._adapter(), client_side)

    def bedrock_message(self, answer: dict) -> dict:
        """The non-streaming upstream answer as a Bedrock-shaped Anthropic message."""
        if self._message is None:
            return answer
        try:
            return self._message(answer)
        except ValueError as exc:  # GptResponseError, GeminiResponseError: not our client's fault
            raise errors.BadGateway(f"SAP AI Core sent an answer the gateway cannot read: "
                                    f"{exc}") from None


def chat_family(sap_model: str, client_model: str) -> str:
    """``claude``, ``gpt`` or ``gemini`` for a model that can chat, else a client 400."""
    family = family_of(sap_model)
    if family not in ("claude", "gpt", "gemini") or "embedding" in sap_model:
        raise errors.InvalidRequest(f"model {client_model} ({sap_model}) is not a chat model")
    return family


def open_pivot(rt: Runtime, sap_model: str, body: dict, betas: Iterable[str], *,
               stream: bool, client_model: str, affinity: str | None = None) -> PivotCall:
    """Open the upstream call for an Anthropic Messages body (raises GatewayError; a body
    the sanitizer cannot make valid is the client's 400). ``betas`` may be iterated twice."""
    try:
        return _open_pivot(rt, sap_model, body, betas, stream=stream, client_model=client_model,
                           affinity=affinity)
    except SanitizeError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    except errors.PromptTooLong as exc:  # say by how much, as Anthropic does (Claude Code compacts)
        if family_of(sap_model) == "claude":
            profile = rt.profile(sap_model)
            raise exc.counted(estimate_input_tokens(body, scale=profile.token_scale),
                              profile.input_window(betas)) from None
        raise exc.counted(estimate_input_tokens(body), None) from None


def _open_pivot(rt: Runtime, sap_model: str, body: dict, betas: Iterable[str], *,
                stream: bool, client_model: str, affinity: str | None) -> PivotCall:
    family = chat_family(sap_model, client_model)
    if family == "claude":
        exchange = open_exchange(rt, sap_model, ClaudePlan(sap_model, body, betas),
                                 stream=stream, client_model=client_model, affinity=affinity)
        return PivotCall(exchange, family)
    normalised = sanitize_bedrock(body, betas=(), profile=PIVOT_PROFILE)
    message_id = "msg_" + secrets.token_hex(12)
    # message_start needs an input count before the upstream reports one (at its end):
    # the local estimate, never a placeholder (Claude Code's context meter reads it)
    estimate = estimate_input_tokens(normalised.body) if stream else 0
    if family == "gpt":
        profile = rt.gpt_profile(sap_model)
        try:
            chat = chat_from_anthropic(normalised.body, profile=profile, stream=stream)
        except GptRequestError as exc:
            raise errors.InvalidRequest(str(exc)) from None
        plan = StaticPlan(api_path(profile), dumps(chat), normalised.repairs)
        exchange = open_exchange(rt, sap_model, plan, stream=stream,
                                 client_model=client_model, affinity=affinity)
        return PivotCall(
            exchange, family,
            lambda: ChatChunksToAnthropic(model=client_model, message_id=message_id,
                                          input_tokens_estimate=estimate),
            lambda answer: message_from_chat_completion(answer, model=client_model))
    profile = rt.gemini_profile(sap_model)
    try:
        request = gemini_from_anthropic(normalised.body, profile=profile)
    except GeminiRequestError as exc:
        raise errors.InvalidRequest(str(exc)) from None
    plan = StaticPlan(gemini_path(sap_model, stream=stream, alt_sse=profile.alt_sse),
                      dumps(request.body), normalised.repairs, decoder=GeminiStreamDecoder)
    exchange = open_exchange(rt, sap_model, plan, stream=stream, client_model=client_model,
                             affinity=affinity)
    names = request.names
    return PivotCall(
        exchange, family,
        lambda: GeminiToAnthropic(model=client_model, message_id=message_id, names=names,
                                  estimated_input_tokens=estimate),
        lambda answer: message_from_gemini(answer, model=client_model, names=names))
