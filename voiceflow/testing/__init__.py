"""Helpers for testing agents and plugins: scripted providers and the virtual clock.

``PluginRegistry(plugins=[voiceflow.testing.fakes])`` adds the scripted providers (``energy`` VAD,
``scripted-stt``, ``scripted-llm``, ``tone`` TTS) to a registry for one test; they are never
registered through entry points, so they never appear in a user's schema.
"""

from voiceflow.clock import RealClock, VirtualClock
from voiceflow.testing import fakes

__all__ = ["RealClock", "VirtualClock", "fakes"]
