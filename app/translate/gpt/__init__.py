"""GPT deployments on Azure OpenAI through SAP AI Core (sap-ai-core.md section 8).

One module per concern, all pure (stdlib, ``app.wire`` and ``app.translate`` only):

* ``request``: :class:`GptProfile` (what one GPT model accepts, data not code), an Anthropic
  Messages body -> an Azure chat body (:func:`chat_from_anthropic`), an OpenAI client's chat
  body made fit for Azure (:func:`prepare_chat`) and the deployment-relative URL paths;
* ``response``: a whole ``chat.completion`` -> a Bedrock-shaped Anthropic message, and the
  usage mapping both directions share;
* ``stream``: Azure ``chat.completion.chunk`` events -> Bedrock-style Anthropic events (the
  streaming adapter in front of the existing client translators);
* ``passthrough``: OpenAI clients on GPT deployments, where the chunks are relayed nearly
  as they come.
"""
