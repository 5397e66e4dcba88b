"""Local LLM through llama-cpp-python (GGUF models, CPU), streaming tokens.

Importing this plugin is cheap: ``llama_cpp`` is imported inside :meth:`LlamaCppLLM.prepare`, so
``voiceflow plugins`` and schema generation work without the offline extras installed.
"""

from __future__ import annotations

from voiceflow.plugins.hookspecs import Register, hookimpl
from voiceflow_llama_cpp.config import MODELS, LlamaCppConfig
from voiceflow_llama_cpp.provider import LlamaCppLLM

__all__ = ["MODELS", "LlamaCppConfig", "LlamaCppLLM", "register_providers"]


@hookimpl
def register_providers(register: Register) -> None:
    register(LlamaCppLLM)
