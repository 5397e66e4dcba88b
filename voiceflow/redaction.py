"""Keeping secrets out of logs, timelines and the terminal.

Provider errors are written by other people's code: an SDK may put the API key in an exception
("invalid key sk-…"), a URL with a token in its query, or an ``Authorization`` header it echoes.
Those texts reach our logs, the per-turn timeline and the terminal, so every one of them passes
through the :class:`Redactor` of the agent that produced it.

The redactor in force is a context variable, set by whoever runs an agent (the CLI, the runner),
and inherited by every task of its calls: no process-global list of secrets, and two agents served
side by side never see each other's keys. A structlog processor applies it to every log event.
"""

from __future__ import annotations

import base64
import re
from collections.abc import Iterable, Iterator, MutableMapping
from contextlib import contextmanager
from contextvars import ContextVar
from typing import Any
from urllib.parse import quote, quote_plus

from pydantic import BaseModel, SecretStr

MASK = "[redacted]"
MIN_PART_LENGTH = 8
_SPLIT = re.compile(r"[\s:]+")
MIN_SECRET_LENGTH = 4
"""Shorter values are not treated as secrets: masking every "1" or "en" would garble messages and
protect nothing."""


class Redactor:
    """Replaces every known secret, and the usual encodings of it, with ``[redacted]``."""

    def __init__(self, secrets: Iterable[str] = ()) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) < MIN_SECRET_LENGTH:
                continue
            forms.update(_encodings(secret))
        # Longest first, so a secret that contains another is masked whole.
        self._forms = sorted((f for f in forms if len(f) >= MIN_SECRET_LENGTH), key=len, reverse=True)

    def __bool__(self) -> bool:
        return bool(self._forms)

    def redact(self, text: str) -> str:
        for form in self._forms:
            if form in text:
                text = text.replace(form, MASK)
        return text

    def merged(self, other: Redactor) -> Redactor:
        joined = Redactor()
        joined._forms = sorted(set(self._forms) | set(other._forms), key=len, reverse=True)
        return joined

    @classmethod
    def for_config(cls, config: BaseModel, extra: Iterable[str] = ()) -> Redactor:
        """Every :class:`SecretStr` in ``config`` (nested models, lists, dicts), plus ``extra``.

        A secret written as ``"Bearer ${KEY}"`` or ``"user:${PASSWORD}"`` holds the real secret
        as one of its parts, and an error may quote just that part: so each word of a secret
        (split at spaces and colons) that is long enough to be a credential is a secret too.
        """
        values = list(_secret_values(config))
        parts = [part for value in values for part in _SPLIT.split(value) if len(part) >= MIN_PART_LENGTH]
        return cls([*values, *parts, *extra])


def _encodings(secret: str) -> set[str]:
    """The secret as it may appear in an error text: raw, URL-quoted, repr-escaped, and base64
    (HTTP basic auth sends ``base64(user:secret)``). Base64 turns 3 bytes into 4 characters, so
    whatever precedes the secret changes only the first group: for each of the three alignments
    the groups made of the secret's bytes alone are the same whatever the prefix was."""
    forms = {secret, quote(secret, safe=""), quote_plus(secret), repr(secret)[1:-1]}
    raw = secret.encode()
    for pad in (b"", b"x", b"xx"):
        encoded = base64.b64encode(pad + raw).decode()
        core = encoded[4 if pad else 0 : -4]  # the last group may mix in what follows
        if len(core) >= 8:
            forms.add(core)
    return forms


def _secret_values(value: Any) -> Iterator[str]:
    if isinstance(value, SecretStr):
        yield value.get_secret_value()
    elif isinstance(value, BaseModel):
        for name in type(value).model_fields:
            yield from _secret_values(getattr(value, name))
    elif isinstance(value, dict):
        for item in value.values():
            yield from _secret_values(item)
    elif isinstance(value, list | tuple | set | frozenset):
        for item in value:
            yield from _secret_values(item)


_NONE = Redactor()
_current: ContextVar[Redactor] = ContextVar("voiceflow_redactor", default=_NONE)


def current_redactor() -> Redactor:
    return _current.get()


def redact(text: str) -> str:
    """``text`` with the secrets of the agent whose task this is masked."""
    return _current.get().redact(text)


@contextmanager
def using_redactor(redactor: Redactor) -> Iterator[Redactor]:
    """Make ``redactor`` (joined with any already in force) apply to this task and its children."""
    joined = _current.get().merged(redactor)
    token = _current.set(joined)
    try:
        yield joined
    finally:
        _current.reset(token)


def redact_log_event(_logger: object, _method: str, event: MutableMapping[str, Any]) -> MutableMapping[str, Any]:
    """structlog processor: mask secrets in every string value of a log event (after exception
    formatting, so tracebacks are covered too)."""
    redactor = _current.get()
    if not redactor:
        return event
    for key, value in event.items():
        if isinstance(value, str):
            event[key] = redactor.redact(value)
        elif isinstance(value, BaseException):
            event[key] = redactor.redact(f"{type(value).__name__}: {value}")
    return event
