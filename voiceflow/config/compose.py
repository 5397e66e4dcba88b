"""Building the full agent model from the core's fields and the registered providers' configs.

Dependencies point one way: :mod:`voiceflow.config.models` knows no plugin, each plugin knows only
:class:`~voiceflow.config.base.ProviderConfig`, and this module, asked by the registry, joins them.
Each stage becomes a non-empty list (a fallback chain) of a union discriminated on ``provider``,
so a misspelt field inside a plugin's block fails exactly like one in the core's.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Any, Union

from pydantic import AfterValidator, BaseModel, BeforeValidator, Field, create_model
from pydantic.json_schema import SkipJsonSchema
from pydantic_core import PydanticCustomError

from voiceflow.config.base import ProviderConfig
from voiceflow.config.models import AgentCore
from voiceflow.config.tools import ToolConfig
from voiceflow.providers import ProviderKind

if TYPE_CHECKING:
    from voiceflow.plugins.registry import PluginRegistry

STAGES: tuple[tuple[str, ProviderKind, str], ...] = (
    ("vad", ProviderKind.VAD, "Voice activity detection: when the caller speaks."),
    ("stt", ProviderKind.STT, "Speech to text."),
    ("llm", ProviderKind.LLM, "The language model that writes the agent's replies."),
    ("tts", ProviderKind.TTS, "Text to speech."),
)


class AgentConfig(AgentCore):
    """The typed view of a whole agent file that the runtime uses.

    The composed model (with provider unions) is a subclass, so code can rely on these attributes
    without knowing which plugins are installed. A stage is required only when some registered
    plugin provides it; otherwise it is empty (``[]``, or ``None`` for ``transport``) and writing
    it in the file is an error.
    """

    transport: ProviderConfig
    vad: list[ProviderConfig]
    stt: list[ProviderConfig]
    llm: list[ProviderConfig]
    tts: list[ProviderConfig]
    turn_detection: list[ProviderConfig] = []


def _union_of(configs: list[type[ProviderConfig]]) -> Any:
    if len(configs) == 1:
        return configs[0]
    return Annotated[Union[tuple(configs)], Field(discriminator="provider")]  # noqa: UP007


def _not_installed(stage: str, kind: ProviderKind, empty: Any) -> Any:
    """The field for a stage no registered plugin provides: optional, and an error if written.

    The inherited :class:`AgentConfig` field would otherwise make the stage required even though
    nothing could fill it; it stays out of the JSON schema.
    """

    def reject(value: Any) -> Any:
        raise PydanticCustomError(
            "stage_not_installed",
            f"no {kind.value} provider is installed, so {stage!r} cannot be used here "
            "(`voiceflow plugins` lists what is installed)",
        )

    annotation = Annotated[Any, BeforeValidator(reject)]
    if isinstance(empty, list):
        return (SkipJsonSchema[annotation], Field(default_factory=list))  # type: ignore[misc]
    return (SkipJsonSchema[annotation], Field(None))  # type: ignore[misc]


def compose_agent_model(registry: PluginRegistry) -> type[BaseModel]:
    fields: dict[str, Any] = {}
    for stage, kind, description in STAGES:
        configs = [info.cls.config_model for info in registry.providers(kind)]
        if not configs:
            fields[stage] = _not_installed(stage, kind, [])
            continue
        fields[stage] = (
            list[_union_of(configs)],  # type: ignore[misc]
            Field(min_length=1, description=f"{description} A fallback chain: first entry first."),
        )
    detectors = [info.cls.config_model for info in registry.providers(ProviderKind.TURN)]
    if detectors:
        fields["turn_detection"] = (
            list[_union_of(detectors)],  # type: ignore[misc]
            Field(
                default_factory=list,
                description="Semantic end-of-turn models asked at each pause (first entry first; "
                "the next one if it fails). Empty: the silence rule alone ends turns.",
            ),
        )
    else:
        fields["turn_detection"] = _not_installed("turn_detection", ProviderKind.TURN, [])
    transports = [info.cls.config_model for info in registry.providers(ProviderKind.TRANSPORT)]
    if transports:
        fields["transport"] = (
            _union_of(transports),
            Field(description="How calls reach the agent (file, browser, phone)."),
        )
    else:
        fields["transport"] = _not_installed("transport", ProviderKind.TRANSPORT, None)
    fields["tools"] = _tools_field(registry)
    return create_model(
        "Agent",
        __base__=AgentConfig,
        __doc__="A voiceflow agent: one file describes the whole voice agent.",
        **fields,
    )


def _tools_field(registry: PluginRegistry) -> Any:
    """``tools``, with each ``function:`` checked against the tools plugins registered."""
    registered = {info.tool.name for info in registry.tools()}

    def installed(tool: ToolConfig) -> ToolConfig:
        if tool.function is not None and tool.function not in registered:
            known = ", ".join(sorted(registered)) or "none is installed"
            raise PydanticCustomError(
                "tool_not_installed",
                f"no plugin registers a tool function named {tool.function!r} ({known})",
            )
        return tool

    inherited = AgentCore.model_fields["tools"]
    return (
        list[Annotated[ToolConfig, AfterValidator(installed)]],
        Field(default_factory=list, max_length=64, description=inherited.description),
    )
