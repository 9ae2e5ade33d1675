"""Secrets kept in the data directory: generated on first start, read afterwards."""

from __future__ import annotations

import os
import secrets
from pathlib import Path


def load_or_create(path: Path) -> tuple[str, bool]:
    """The secret stored at ``path``; (value, True) when this call created it."""
    if path.exists():
        return path.read_text().strip(), False
    path.parent.mkdir(parents=True, exist_ok=True)
    value = secrets.token_urlsafe(32)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w") as handle:
        handle.write(value + "\n")
    return value, True
