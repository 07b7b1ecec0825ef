"""Sparse non-negative concept codes over a vocabulary (SpLiCE-style, arXiv 2504.14076).

The names below are loaded on first use: the solver needs torch, and commands that only read a
library's store (``earmark status``, ``ls``, ``rm``) should not pay ~3 s to import it.
"""
from __future__ import annotations

import importlib
from typing import Any

from .errors import DictionaryError, SolverError
from .sparsity import DEFAULT_LAM

_LAZY = {"ConceptCodes": "decompose", "decompose": "decompose",
         "recompose": "decompose", "ConceptDictionary": "dictionary", "build_dictionary": "dictionary"}

__all__ = ["DEFAULT_LAM", "ConceptCodes", "ConceptDictionary", "DictionaryError", "SolverError",
           "build_dictionary", "decompose", "recompose"]


def __getattr__(name: str) -> Any:
    if name in _LAZY:
        return getattr(importlib.import_module(f".{_LAZY[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
