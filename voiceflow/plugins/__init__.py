"""Plugin discovery (pluggy, entry-point group ``voiceflow``) and the provider registry."""

from voiceflow.plugins.hookspecs import hookimpl
from voiceflow.plugins.registry import PluginError, PluginRegistry, ProviderInfo

__all__ = ["PluginError", "PluginRegistry", "ProviderInfo", "hookimpl"]
