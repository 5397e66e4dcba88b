"""The agent file: core models, the provider config base, loading and errors.

Loading lives in :mod:`voiceflow.config.loader` (it needs the plugin registry); this package's
top level stays import-light so that providers can import their config base from it.
"""

from voiceflow.config.base import AttemptTimeouts, ProviderConfig, Strict
from voiceflow.config.errors import ConfigError, ConfigIssue
from voiceflow.config.limits import YamlLimits

__all__ = ["AttemptTimeouts", "ConfigError", "ConfigIssue", "ProviderConfig", "Strict", "YamlLimits"]
