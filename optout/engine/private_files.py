"""Files optout writes for people (plans, reports, exports): readable by their owner only
(0600, whatever the umask), never written through a link someone planted at the name."""

from __future__ import annotations

import os
from pathlib import Path
from typing import IO


def open_private(path: str | Path, newline: str | None = None) -> IO[str]:
    """A text file opened for writing at mode 0600 (an existing one is truncated and set to
    0600; a symbolic link at the name is refused)."""
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW | os.O_CLOEXEC,
                 0o600)
    try:
        os.fchmod(fd, 0o600)
        return os.fdopen(fd, "w", encoding="utf-8", newline=newline)
    except BaseException:
        os.close(fd)
        raise


def write_private(path: str | Path, text: str) -> None:
    """Write a text file at mode 0600."""
    with open_private(path) as fh:
        fh.write(text)
