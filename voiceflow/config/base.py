"""The base models plugins build their provider configs on.

This module knows nothing of any plugin. Each provider declares a subclass of
:class:`ProviderConfig` with ``provider: Literal["its-name"]``; the plugin registry composes those
into discriminated unions for the full agent model (:mod:`voiceflow.config.compose`).

Rules every config inherits from :class:`Strict`, so a plugin gets them without writing them:
unknown keys are errors, infinities and NaN are refused, and a boolean is never taken for a number
(pydantic's lax mode would read ``true`` as 1). Plugins declare files they read with
:data:`ModelFilePath` / :data:`ModelDirPath`, checked when an agent file is validated.
"""

from __future__ import annotations

import errno
import os
import stat
import types
import typing
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    BaseModel,
    ConfigDict,
    Field,
    ModelWrapValidatorHandler,
    ValidationError,
    ValidationInfo,
    model_validator,
)
from pydantic_core import InitErrorDetails, PydanticCustomError


class Strict(BaseModel):
    """Every config model forbids unknown keys: a typo must be an error, never silently ignored.

    Numbers must be finite (``.inf``, ``.nan`` or ``1e400`` in a timeout can only be a mistake) and
    must not be booleans. Strings such as ``"0.4"`` are still numbers: ``${VAR}`` interpolation
    produces strings.
    """

    model_config = ConfigDict(extra="forbid", frozen=True, allow_inf_nan=False)

    @model_validator(mode="wrap")
    @classmethod
    def _no_boolean_numbers(cls, data: Any, handler: ModelWrapValidatorHandler[Any]) -> Any:
        """A model-level check (a field validator may not touch the ``provider`` discriminator);
        its errors are merged with the fields' own, so every problem is still reported at once."""
        booleans = [
            InitErrorDetails(
                type=PydanticCustomError("bool_not_number", "expected a number, got a boolean"),
                loc=(name,),
                input=value,
            )
            for name, value in (data.items() if isinstance(data, dict) else ())
            if isinstance(value, bool)
            and name in cls.model_fields
            and _wants_number(cls.model_fields[name].annotation)
        ]
        if not booleans:
            return _guarded(handler, data)
        flagged = {error["loc"] for error in booleans}
        try:
            _guarded(handler, data)
            others: list[InitErrorDetails] = []
        except ValidationError as exc:
            others = [
                InitErrorDetails(
                    type=PydanticCustomError(error["type"], error["msg"]), loc=error["loc"], input=error["input"]
                )
                for error in exc.errors()
                if error["loc"][:1] not in flagged
            ]
        raise ValidationError.from_exception_data(cls.__name__, booleans + others)


def _guarded(handler: ModelWrapValidatorHandler[Any], data: Any) -> Any:
    """Validate; a validator that crashed (a bug, or an OSError nobody expected) becomes an error
    of this block, so the agent file still gets its file, line and field instead of a traceback."""
    try:
        return handler(data)
    except ValidationError:
        raise
    except Exception as exc:  # noqa: BLE001 - reported, not swallowed
        raise PydanticCustomError(
            "validator_crashed",
            "could not be checked ({error}); this is a bug, please report it",
            {"error": f"{type(exc).__name__}: {exc}"},
        ) from None


def _wants_number(annotation: Any) -> bool:
    """Whether a field takes numbers but not booleans (through Annotated, Optional, unions)."""
    origin = typing.get_origin(annotation)
    if origin is typing.Annotated:
        return _wants_number(typing.get_args(annotation)[0])
    if origin in (typing.Union, types.UnionType):
        args = typing.get_args(annotation)
        if any(arg is bool or arg is Any for arg in args):
            return False
        return any(_wants_number(arg) for arg in args)
    if origin is Literal:
        return any(isinstance(v, int | float) and not isinstance(v, bool) for v in typing.get_args(annotation))
    return isinstance(annotation, type) and issubclass(annotation, int | float | Decimal) and annotation is not bool


class AttemptTimeouts(Strict):
    """Per-attempt limits a fallback chain enforces around each provider call."""

    connect: float = Field(5.0, gt=0, le=600, description="Seconds to open the stream or connection.")
    first_byte: float = Field(
        4.0, gt=0, le=600, description="Seconds from request to the first token or audio chunk."
    )
    idle: float = Field(5.0, gt=0, le=600, description="Longest gap between two items of one stream.")
    prepare: float = Field(
        60.0,
        gt=0,
        le=3600,
        description="Seconds for the provider to get ready (load a model, open a pool) before the "
        "chain skips it.",
    )


class CircuitBreaker(Strict):
    """When a provider keeps failing, stop trying it for a while (shared by every call of the
    process), so callers stop paying its timeouts; then let one request probe it."""

    failures: int = Field(
        3, ge=1, le=1000, description="Consecutive failures that open the circuit (the provider is skipped)."
    )
    reset_after: float = Field(
        30.0, gt=0, le=3600, description="Seconds the circuit stays open before one request probes it again."
    )


class ProviderConfig(Strict):
    """Settings common to every provider entry of a stage's chain."""

    provider: str = Field(description="Which registered provider this entry uses.")
    timeouts: AttemptTimeouts = AttemptTimeouts()
    circuit: CircuitBreaker = Field(
        CircuitBreaker(), description="When to stop trying this provider after repeated failures."
    )


# --- files a provider reads -------------------------------------------------------------------

_ERRNO_TEXT = {
    errno.ENOENT: "no such file",
    errno.ELOOP: "too many levels of symbolic links",
    errno.EACCES: "permission denied",
    errno.EPERM: "permission denied",
    errno.ENOTDIR: "a part of the path is not a directory",
    errno.ENAMETOOLONG: "the name is too long",
}

_NOT_REGULAR = (
    (stat.S_ISFIFO, "is a FIFO"),
    (stat.S_ISCHR, "is a character device"),
    (stat.S_ISBLK, "is a block device"),
    (stat.S_ISSOCK, "is a socket"),
)


def os_error_text(exc: OSError) -> str:
    """A short lower-case reason for a failed open or stat ("no such file", ...)."""
    return _ERRNO_TEXT.get(exc.errno or 0) or (exc.strerror or type(exc).__name__).lower()


def file_kind_problem(mode: int, *, directory: bool = False) -> str | None:
    """What is wrong with a file of this ``st_mode`` where a regular file (or a directory) belongs."""
    if directory:
        return None if stat.S_ISDIR(mode) else "is not a directory"
    if stat.S_ISDIR(mode):
        return "is a directory"
    for test, kind in _NOT_REGULAR:
        if test(mode):
            return f"{kind}, not a regular file"
    return None if stat.S_ISREG(mode) else "is not a regular file"


def same_file(a: Path, b: Path) -> bool:
    """Whether two paths name one file: through symlinks, ``..`` and hard links (so an output can
    be told from the recording it would overwrite)."""
    if os.path.realpath(a) == os.path.realpath(b):
        return True
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def path_problem(path: Path, *, directory: bool = False) -> str | None:
    """Why ``path`` cannot be read as a regular file (or listed as a directory); None if it can.

    Only ``stat`` is used: opening a FIFO would block, and a device may never end.
    """
    try:
        mode = os.stat(path).st_mode
    except OSError as exc:
        return os_error_text(exc)
    except ValueError:  # an embedded NUL byte
        return "the name contains a NUL character"
    problem = file_kind_problem(mode, directory=directory)
    if problem is None and not os.access(path, os.R_OK | (os.X_OK if directory else 0)):
        return "permission denied"
    return problem


def _checked(value: Path, info: ValidationInfo, directory: bool) -> Path:
    """Resolve ``value`` against the agent file's folder and check it, when an agent file is being
    validated (``base_dir`` in the context). A config built in code is checked when it loads."""
    base = (info.context or {}).get("base_dir")
    if base is None:
        return value
    path = value.expanduser()
    if not path.is_absolute():
        path = Path(os.path.normpath(Path(base) / path))
    problem = path_problem(path, directory=directory)
    if problem is not None:
        raise PydanticCustomError("path_problem", "{problem}: {path}", {"problem": problem, "path": str(path)})
    return path


def _checked_file(value: Path, info: ValidationInfo) -> Path:
    return _checked(value, info, False)


def _checked_dir(value: Path, info: ValidationInfo) -> Path:
    return _checked(value, info, True)


ModelFilePath = Annotated[Path, AfterValidator(_checked_file)]
"""A file a provider reads (model weights, a voice's JSON): relative to the agent file, and refused
at validation if it is missing, a directory, a FIFO or device, a symlink loop, or unreadable."""

ModelDirPath = Annotated[Path, AfterValidator(_checked_dir)]
"""Like :data:`ModelFilePath`, for a model that is a directory (a CTranslate2 Whisper model)."""
