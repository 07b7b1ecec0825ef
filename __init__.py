"""earmark: concept-based search for sound libraries.

The public Python API is :class:`earmark.Library`; everything else is reachable from the
sub-packages that follow the data path (engine: audio → embeddings → concept codes → query →
evidence; index: the SQLite store and the FAISS/sparse indexes).
"""
from __future__ import annotations

__version__ = "0.1.0"
__all__ = ["Library", "__version__"]


def __getattr__(name: str):
    # Lazy: importing earmark must not import torch or faiss (fast CLI start, rule 8 of STYLE.md).
    if name == "Library":
        from .engine.library import Library

        return Library
    raise AttributeError(name)
