"""How much of an agent file voiceflow is willing to read, in one place.

An agent file is a few kilobytes written by a person. Anything far beyond that is a mistake (the
wrong file, ``/dev/zero``) or an attack (a YAML alias bomb, 10,000 nested brackets), and each of
those would otherwise cost unbounded time, memory or stack. Every refusal names the limit and its
value, so a person who really needs more knows what to raise.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class YamlLimits:
    max_bytes: int = 1024 * 1024
    """Largest agent file read; at most one byte more is ever read to tell."""
    max_depth: int = 64
    """Deepest nesting of mappings and sequences, counted after aliases are expanded."""
    max_alias_nodes: int = 10_000
    """Most values that may be built through aliases (``*name``), counting every copy."""
    max_values: int = 20_000
    """Most values (scalars, lists, mappings, keys included) written in one file: a real agent
    has a few hundred, and each one costs time to build, validate and report on."""
    max_issues: int = 100
    """Most problems listed for one file; the rest are counted on one more line."""


DEFAULT_LIMITS = YamlLimits()
