"""Sparse non-negative concept codes over a vocabulary (SpLiCE-style, arXiv 2504.14076).

The solver needs torch, and commands that only read a library's store (``earmark status``,
``ls``, ``check``) should not pay ~1.5 s to import it, so this package exports only its
exceptions and default sparsity; import the rest from its modules (``.decompose``,
``.dictionary``, ``.solver``, ``.adapter``). Re-exporting ``decompose`` lazily here would clash
with the submodule of the same name, which Python binds on the package once imported.
"""
from .errors import DictionaryError, SolverError
from .sparsity import DEFAULT_LAM

__all__ = ["DEFAULT_LAM", "DictionaryError", "SolverError"]
