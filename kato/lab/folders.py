"""Where a command writes: a new folder per run, named by what made it and when."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

__all__ = ["new_folder"]


def new_folder(root: Path, kind: str) -> Path:
    """Create and return ``root/<kind>-<UTC time to the microsecond>`` (never an existing one)."""
    folder = Path(root) / f"{kind}-{dt.datetime.now(dt.UTC).strftime('%Y%m%dT%H%M%S%f')}"
    folder.mkdir(parents=True)
    return folder
