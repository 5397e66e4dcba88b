"""LLM through the OpenAI chat-completions API: OpenAI itself or any compatible server
(vLLM, Ollama, llama.cpp's server, gateways), streamed through the official ``openai`` SDK.

Importing this plugin is cheap: the SDK is imported inside :meth:`OpenAILLM.prepare`, so
``voiceflow plugins`` and schema generation work without the ``cloud`` extra installed.
"""

from __future__ import annotations

from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow_openai.config import OpenAIConfig
from voiceflow_openai.provider import OpenAILLM

__all__ = ["OpenAIConfig", "OpenAILLM", "register_providers"]


@hookimpl
def register_providers(register: Register) -> None:
    register(OpenAILLM)
