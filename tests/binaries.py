"""Finding the Debian programs the tests start (redis-server, turnserver)."""

from __future__ import annotations

import shutil
from pathlib import Path


def find_binary(name: str, given: str | None, install_hint: str) -> str:
    """``given``, else ``name`` on the PATH, else /usr/bin/``name``; it must exist."""
    candidate = given or shutil.which(name) or f"/usr/bin/{name}"
    if not Path(candidate).is_file():
        raise RuntimeError(f"{name} binary not found (looked for {candidate!r}); {install_hint}")
    return candidate
