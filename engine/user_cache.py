"""Where earmark keeps per-user caches (the training corpus, bench embeddings, the traced text tower).

$EARMARK_CACHE_DIR when set, else $XDG_CACHE_HOME/earmark, else ~/.cache/earmark. A library's
own caches live inside the library, not here.
"""
from __future__ import annotations

import os
from pathlib import Path


def cache_root() -> Path:
    """earmark's per-user cache folder (not created here)."""
    if os.environ.get("EARMARK_CACHE_DIR"):
        return Path(os.environ["EARMARK_CACHE_DIR"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base).expanduser() / "earmark"
