"""Reading an agent file's bytes without trusting the path: whatever it names, one clear error.

The path is ``stat``-ed before it is opened, because opening a FIFO for reading blocks until a
writer comes and a device such as ``/dev/zero`` never ends. It is then opened non-blocking and
checked again on the open descriptor (it may have been swapped in between), and at most one byte
more than the size limit is read. The bytes must be UTF-8; a bad byte is reported at its line and
column, counted in characters as an editor shows them.
"""

from __future__ import annotations

import os
from pathlib import Path

from voiceflow.config.base import file_kind_problem, os_error_text
from voiceflow.config.errors import ConfigError, ConfigIssue, line_column
from voiceflow.config.limits import YamlLimits

_OPEN_FLAGS = os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_NOCTTY", 0)

_WIDE_BOMS = (
    (b"\xff\xfe\x00\x00", "UTF-32"),
    (b"\x00\x00\xfe\xff", "UTF-32"),
    (b"\xff\xfe", "UTF-16"),
    (b"\xfe\xff", "UTF-16"),
)


def read_agent_text(path: str | Path, limits: YamlLimits) -> str:
    """The text of the agent file at ``path``, or :class:`ConfigError` saying why not."""
    filename = str(path)

    def fail(message: str) -> ConfigError:
        return ConfigError([ConfigIssue(filename, None, None, (), message)])

    too_big = fail(
        f"the file is larger than the limit of max_bytes={limits.max_bytes} "
        "(an agent file is a few kilobytes: is this the right file?)"
    )
    try:
        status = os.stat(path)
        problem = file_kind_problem(status.st_mode)
        if problem is not None:
            raise fail(f"cannot read: {problem}")
        if status.st_size > limits.max_bytes:
            raise too_big
        fd = os.open(path, _OPEN_FLAGS)
    except OSError as exc:
        raise fail(f"cannot read: {os_error_text(exc)}") from None
    except ValueError:
        raise fail("cannot read: the name contains a NUL character") from None
    try:
        problem = file_kind_problem(os.fstat(fd).st_mode)
        if problem is not None:
            raise fail(f"cannot read: {problem}")
        data = _read_at_most(fd, limits.max_bytes + 1)  # the size may have changed since stat
    except OSError as exc:
        raise fail(f"cannot read: {os_error_text(exc)}") from None
    finally:
        os.close(fd)
    if len(data) > limits.max_bytes:
        raise too_big
    return decode_utf8(data, filename)


def _read_at_most(fd: int, size: int) -> bytes:
    chunks: list[bytes] = []
    remaining = size
    while remaining > 0:
        chunk = os.read(fd, min(remaining, 1 << 16))
        if not chunk:
            break
        chunks.append(chunk)
        remaining -= len(chunk)
    return b"".join(chunks)


def decode_utf8(data: bytes, filename: str) -> str:
    """``data`` as text; a UTF-16/32 file or a byte that is not UTF-8 is a :class:`ConfigError`."""
    for bom, encoding in _WIDE_BOMS:
        if data.startswith(bom):
            issue = ConfigIssue(filename, 1, 1, (), f"the file is {encoding} text; save it as UTF-8")
            raise ConfigError([issue])
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as exc:
        good = data[: exc.start].decode("utf-8")
        line, column = line_column(good, len(good))
        message = f"not UTF-8 text: byte 0x{data[exc.start]:02x} cannot be decoded (save the file as UTF-8)"
        raise ConfigError([ConfigIssue(filename, line, column, (), message)]) from None
