"""The llama.cpp LLM provider: one loaded model per config, shared by every session.

``llama_cpp.Llama`` is not thread-safe, so one :class:`anyio.CapacityLimiter` guards it: a
reply holds it from the first token until its producing thread has really stopped, which is
what lets a barged-in reply free the model within one token for the next request.
"""

from __future__ import annotations

import threading
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any

import anyio

from voiceflow.compute import StopFlag, iterate_in_thread, run_in_thread
from voiceflow.frames import Message
from voiceflow.models import ModelError, ensure_model_file, verify
from voiceflow.providers import LLMProvider, ProviderError, ProviderUnavailable
from voiceflow_llama_cpp.config import MODELS, LlamaCppConfig
from voiceflow_llama_cpp.cpu import cpu_advertises_amx

# Llama() reads its model parameters from llama_model_default_params(); the only way to turn
# off extra buffer types through the high-level API is to adjust those defaults while loading.
_defaults_lock = threading.Lock()


class LlamaCppLLM(LLMProvider[LlamaCppConfig]):
    """Local LLM in-process via llama.cpp (GGUF; Qwen2.5-0.5B from PyPI by default)."""

    name = "llama-cpp"
    config_model = LlamaCppConfig

    def __init__(self, config: LlamaCppConfig) -> None:
        super().__init__(config)
        self._llama: Any = None
        self._limiter = anyio.CapacityLimiter(1)

    def resolve_model_path(self) -> Path:
        """The GGUF file this config names, verified by sha256 where a hash is known (slow once)."""
        config = self.config
        try:
            if config.model_path is None:
                return ensure_model_file(MODELS[config.model])
            if not config.model_path.is_file():
                raise ModelError(f"model_path {config.model_path} does not exist")
            if config.sha256 is not None:
                return verify(config.model_path, config.sha256)
            return config.model_path
        except ModelError as exc:
            raise ProviderUnavailable(f"llama-cpp: {exc}") from exc

    async def prepare(self) -> None:
        """Load the model once and warm it up, so the first caller does not pay the cold start."""
        await run_in_thread(self._load, limiter=self._limiter, abandon_on_cancel=True)

    async def warm(self, messages: Sequence[Message]) -> None:
        """Read the system prompt into the KV cache now; llama.cpp reuses a matching prefix."""
        payload = [message.as_dict() for message in messages]
        await run_in_thread(self._warm, payload, limiter=self._limiter)

    async def aclose(self) -> None:
        await run_in_thread(self._unload, limiter=self._limiter)

    def stream(self, messages: Sequence[Message]) -> AsyncIterator[str]:
        """Stream the reply as text deltas; stopping the iteration stops generation within a token."""
        payload = [message.as_dict() for message in messages]
        return iterate_in_thread(
            lambda stop: self._generate(payload, stop), limiter=self._limiter, name="llama-cpp"
        )

    # --- worker-thread side ---------------------------------------------------------------

    def _generate(self, payload: list[dict[str, str]], stop: StopFlag) -> Iterator[str]:
        llama = self._llama
        if llama is None:
            raise ProviderError("llama-cpp: stream() called before prepare()")
        config = self.config
        try:
            chunks = llama.create_chat_completion(
                messages=payload,
                stream=True,
                max_tokens=config.max_tokens,
                temperature=config.temperature,
                top_p=config.top_p,
                seed=config.seed,
            )
        except ValueError as exc:  # e.g. "Requested tokens (…) exceed context window of …"
            raise ProviderError(f"llama-cpp: {exc}; shorten the context or raise n_ctx") from exc
        try:
            for chunk in chunks:
                if stop.is_set():
                    return  # the consumer is gone: closing the generator ends decoding here
                delta = chunk["choices"][0]["delta"].get("content")
                if delta:
                    yield delta
        except ValueError as exc:
            raise ProviderError(f"llama-cpp: {exc}; shorten the context or raise n_ctx") from exc
        finally:
            close = getattr(chunks, "close", None)
            if close is not None:
                close()

    def _load(self) -> None:
        if self._llama is not None:
            return
        try:
            import llama_cpp
            import llama_cpp.llama_cpp as llama_lib
        except ImportError as exc:
            raise ProviderUnavailable(
                "llama-cpp: llama-cpp-python is not installed: pip install 'voiceflow[offline]'"
            ) from exc
        path = self.resolve_model_path()
        config = self.config
        repack = config.weight_repacking == "on" or (
            config.weight_repacking == "auto" and not cpu_advertises_amx()
        )
        original = llama_lib.llama_model_default_params

        def defaults() -> Any:
            params = original()
            params.use_extra_bufts = False
            return params

        with _defaults_lock:
            if not repack:
                llama_lib.llama_model_default_params = defaults
            try:
                llama = llama_cpp.Llama(
                    model_path=str(path),
                    n_threads=config.n_threads,
                    n_threads_batch=config.n_threads_batch or config.n_threads,
                    n_ctx=config.n_ctx,
                    seed=config.seed if config.seed is not None else llama_cpp.LLAMA_DEFAULT_SEED,
                    verbose=False,
                )
            except ValueError as exc:  # llama_cpp reports every load failure as ValueError
                raise ProviderUnavailable(f"llama-cpp: cannot load {path}: {exc}") from exc
            finally:
                llama_lib.llama_model_default_params = original
        # Warm-up: the first decode allocates compute buffers and pages in the weights.
        llama.create_chat_completion(
            messages=[{"role": "user", "content": "Hi"}], max_tokens=1, temperature=0.0
        )
        self._llama = llama

    def _warm(self, payload: list[dict[str, str]]) -> None:
        if self._llama is not None:
            self._llama.create_chat_completion(messages=payload, max_tokens=1, temperature=0.0)

    def _unload(self) -> None:
        llama, self._llama = self._llama, None
        if llama is not None:
            llama.close()
