"""Discovering plugins and answering "which providers exist?".

A :class:`PluginRegistry` is an ordinary object, not a module global: a test, a process serving
calls and a schema generator can each hold their own, with different plugin sets, side by side.
"""

from __future__ import annotations

import importlib.metadata as metadata
from collections.abc import Iterable
from dataclasses import dataclass, field
from functools import cached_property
from typing import TYPE_CHECKING, Any

import pluggy

from voiceflow.plugins import hookspecs
from voiceflow.providers import Provider, ProviderKind
from voiceflow.tools import Tool

if TYPE_CHECKING:
    from pydantic import BaseModel

BUILTIN_DISTRIBUTION = "voiceflow"


class PluginError(Exception):
    """A plugin is broken or two plugins claim the same provider name."""


@dataclass(frozen=True, slots=True)
class ProviderInfo:
    """One registered provider, with where it came from (for ``voiceflow plugins``)."""

    kind: ProviderKind
    name: str
    cls: type[Provider[Any]]
    plugin: str
    package: str
    version: str

    @property
    def builtin(self) -> bool:
        return self.package == BUILTIN_DISTRIBUTION


@dataclass(frozen=True, slots=True)
class ToolInfo:
    """One registered Python tool, with where it came from."""

    tool: Tool
    plugin: str
    package: str
    version: str


@dataclass(frozen=True, slots=True)
class BrokenPlugin:
    """An entry point that failed to load: listed, reported, and otherwise left out."""

    plugin: str
    package: str
    error: str


@dataclass
class PluginRegistry:
    """The plugins of one process (or one test), and the providers they registered.

    ``builtin_only`` loads just the providers shipped in the ``voiceflow`` distribution: that is
    what the checked-in schema describes. ``plugins`` adds plugin objects directly (modules or
    instances with hook implementations), as a test or an embedding application might.
    """

    builtin_only: bool = False
    plugins: Iterable[object] = ()
    entry_points: bool = True
    manager: pluggy.PluginManager = field(init=False)
    broken: list[BrokenPlugin] = field(init=False, default_factory=list)
    _providers: dict[tuple[ProviderKind, str], ProviderInfo] = field(init=False, default_factory=dict)
    _tools: dict[str, ToolInfo] = field(init=False, default_factory=dict)
    _origin: dict[int, tuple[str, str, str]] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.manager = pluggy.PluginManager(hookspecs.PROJECT)
        self.manager.add_hookspecs(hookspecs)
        if self.entry_points:
            self._load_entry_points()
        for plugin in self.plugins:
            name = getattr(plugin, "__name__", type(plugin).__name__)
            self._add(plugin, name, "(in-process)", "")
        self._collect()

    def _load_entry_points(self) -> None:
        for ep in metadata.entry_points(group=hookspecs.ENTRY_POINT_GROUP):
            dist = ep.dist
            package = dist.name if dist is not None else "?"
            version = dist.version if dist is not None else "?"
            if self.builtin_only and package != BUILTIN_DISTRIBUTION:
                continue
            if self.manager.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
            except Exception as exc:  # noqa: BLE001 - one broken plugin must not hide the rest
                self.broken.append(BrokenPlugin(ep.name, package, f"{type(exc).__name__}: {exc}"))
                continue
            self._add(plugin, ep.name, package, version)

    def _add(self, plugin: object, name: str, package: str, version: str) -> None:
        self.manager.register(plugin, name=name)
        self._origin[id(plugin)] = (name, package, version)

    def _collect(self) -> None:
        for kind_hook in (self.manager.hook.register_providers, self.manager.hook.register_transports):
            for impl in kind_hook.get_hookimpls():
                origin = self._origin.get(id(impl.plugin), (impl.plugin_name, "?", "?"))
                try:
                    impl.function(register=lambda cls, o=origin: self._register(cls, *o))
                except PluginError:
                    raise
                except Exception as exc:  # noqa: BLE001
                    self.broken.append(BrokenPlugin(origin[0], origin[1], f"{type(exc).__name__}: {exc}"))
        for impl in self.manager.hook.register_tools.get_hookimpls():
            origin = self._origin.get(id(impl.plugin), (impl.plugin_name, "?", "?"))
            try:
                impl.function(register=lambda tool, o=origin: self._register_tool(tool, *o))
            except PluginError:
                raise
            except Exception as exc:  # noqa: BLE001
                self.broken.append(BrokenPlugin(origin[0], origin[1], f"{type(exc).__name__}: {exc}"))

    def _register(self, cls: type[Provider[Any]], plugin: str, package: str, version: str) -> None:
        for attr in ("kind", "name", "config_model"):
            if not hasattr(cls, attr):
                raise PluginError(f"plugin {plugin!r} ({package}) registered {cls!r} without {attr!r}")
        key = (ProviderKind(cls.kind), cls.name)
        if key in self._providers and self._providers[key].cls is not cls:
            other = self._providers[key]
            raise PluginError(
                f"{cls.kind.value} provider {cls.name!r} is registered twice: by {other.package} "
                f"(plugin {other.plugin!r}) and by {package} (plugin {plugin!r})"
            )
        self._providers[key] = ProviderInfo(key[0], cls.name, cls, plugin, package, version)

    def _register_tool(self, tool: Tool, plugin: str, package: str, version: str) -> None:
        if not isinstance(tool, Tool):
            raise PluginError(f"plugin {plugin!r} ({package}) registered {tool!r}, not a voiceflow.tools.Tool")
        other = self._tools.get(tool.name)
        if other is not None and other.tool is not tool:
            raise PluginError(
                f"tool {tool.name!r} is registered twice: by {other.package} (plugin {other.plugin!r}) "
                f"and by {package} (plugin {plugin!r})"
            )
        self._tools[tool.name] = ToolInfo(tool, plugin, package, version)

    # --- queries ----------------------------------------------------------------------------

    def providers(self, kind: ProviderKind | None = None) -> list[ProviderInfo]:
        infos = sorted(self._providers.values(), key=lambda i: (i.kind.value, i.name))
        return [i for i in infos if kind is None or i.kind == kind]

    def get(self, kind: ProviderKind, name: str) -> ProviderInfo:
        try:
            return self._providers[(kind, name)]
        except KeyError:
            known = ", ".join(i.name for i in self.providers(kind)) or "none"
            raise PluginError(f"no {kind.value} provider named {name!r} (installed: {known})") from None

    def tools(self) -> list[ToolInfo]:
        return [self._tools[name] for name in sorted(self._tools)]

    def tool(self, name: str) -> ToolInfo:
        try:
            return self._tools[name]
        except KeyError:
            known = ", ".join(sorted(self._tools)) or "none"
            raise PluginError(f"no tool named {name!r} is registered by a plugin (installed: {known})") from None

    def add_commands(self, cli: Any) -> None:
        self.manager.hook.register_commands(cli=cli)

    @cached_property
    def agent_model(self) -> type[BaseModel]:
        """The full agent model: the core's fields plus every registered provider's config."""
        from voiceflow.config.compose import compose_agent_model

        return compose_agent_model(self)

