"""voiceflow: real-time voice agents, each one YAML file.

The public API for plugin authors: :mod:`voiceflow.providers` (what a provider implements),
:mod:`voiceflow.frames` (what flows through a call), :mod:`voiceflow.config.base` (config models),
:mod:`voiceflow.compute` (running blocking model code), :mod:`voiceflow.models` (verified model
files), :mod:`voiceflow.audio` (PCM at the edges), :mod:`voiceflow.clock` (session time),
:mod:`voiceflow.g711` (phone audio), :mod:`voiceflow.tools` (tools for the LLM),
:mod:`voiceflow.serving.api` (served transports), :mod:`voiceflow.plugins` (``hookimpl``) and
:mod:`voiceflow.testing` (fakes and conformance).
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("voiceflow")
except PackageNotFoundError:  # running from a source tree that was never installed
    __version__ = "0.0.0"
