"""The file transport's settings, checked when the agent file loads.

A recording that cannot be played or an output that cannot be written is refused here, with the
agent file's line and column, instead of after the models have loaded or the whole call has run.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path
from typing import Literal

from pydantic import Field, ValidationInfo, field_validator, model_validator

from voiceflow.audio import check_recording, display_path
from voiceflow.config.base import ProviderConfig, same_file


class FileTransportConfig(ProviderConfig):
    provider: Literal["file"] = "file"
    input: Path | None = Field(None, description="The caller's recording (WAV, any rate; mixed to mono).")
    output: Path | None = Field(
        None, description="Where to write the whole call as a stereo WAV (caller left, agent right)."
    )
    start: Literal["after_greeting", "immediately"] = Field(
        "after_greeting",
        description="When the caller starts talking: once the agent's greeting has been heard "
        "(like a person would), or at once.",
    )
    lead_in: float = Field(0.3, ge=0, le=60, description="Seconds between the greeting's end and the caller.")
    realtime: bool = Field(False, description="Play in real time instead of on the virtual clock.")
    buffer_seconds: float = Field(
        1.0, gt=0, le=60, description="How much agent audio may wait ahead of playout (back-pressure)."
    )

    @field_validator("input", "output", mode="before")
    @classmethod
    def _names_a_file(cls, value: object) -> object:
        """``out/`` names a folder; once made a Path the slash is gone, so look at the text."""
        if isinstance(value, str) and value.endswith(("/", os.sep)):
            raise ValueError(f"{value!r} names a folder; give a file name")
        return value

    @field_validator("input", "output")
    @classmethod
    def _relative_to_agent_file(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        """Paths in an agent file are relative to that file, not to wherever it is run from.

        Joined, not resolved: resolving follows symlinks and raises on a loop, which the checks
        below report in one line instead."""
        base = (info.context or {}).get("base_dir")
        if value is None or value.is_absolute() or base is None:
            return value
        return Path(base) / value

    @field_validator("input")
    @classmethod
    def _input_is_a_wav(cls, value: Path | None) -> Path | None:
        """Refuse a bad recording when the agent loads, not halfway into the call."""
        if value is not None:
            check_recording(value)
        return value

    @field_validator("output")
    @classmethod
    def _output_can_be_written(cls, value: Path | None) -> Path | None:
        """The call is written only once it is over: a path that cannot take it would lose it."""
        if value is not None:
            check_output_path(value)
        return value

    @model_validator(mode="after")
    def _output_is_not_the_input(self) -> FileTransportConfig:
        if self.input is not None and self.output is not None and same_file(self.input, self.output):
            raise ValueError(f"input and output are the same file ({display_path(self.output)}); "
                             "writing the call there would overwrite the recording")
        return self


def check_output_path(path: Path) -> None:
    """Raise a one-line ValueError unless ``path`` names a file that can be created or replaced."""
    shown = display_path(path)
    mode = _mode(path)
    if mode is not None and stat.S_ISDIR(mode):
        raise ValueError(f"{shown} is a directory; give a file name")
    if mode is not None and not stat.S_ISREG(mode):
        raise ValueError(f"{shown} exists and is not a regular file")
    parent = path.parent
    parent_mode = _mode(parent)
    if parent_mode is None:
        raise ValueError(f"{shown} cannot be written: folder {display_path(parent)} does not exist")
    if not stat.S_ISDIR(parent_mode):
        raise ValueError(f"{shown} cannot be written: {display_path(parent)} is not a folder")
    if not os.access(parent, os.W_OK | os.X_OK) or (mode is not None and not os.access(path, os.W_OK)):
        raise ValueError(f"{shown} cannot be written (permission denied)")


def _mode(path: Path) -> int | None:
    """``st_mode``, or None if nothing is there; any other failure is a one-line ValueError."""
    try:
        return os.stat(path).st_mode
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        raise ValueError(f"{display_path(path)} cannot be checked ({exc.strerror})") from None
