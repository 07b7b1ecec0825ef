"""Sparse non-negative concept codes over a vocabulary (SpLiCE-style, arXiv 2504.14076)."""
from .decompose import DEFAULT_LAM, ConceptCodes, decompose, recompose
from .dictionary import ConceptDictionary, DictionaryError, build_dictionary
from .solver import SolverError

__all__ = ["DEFAULT_LAM", "ConceptCodes", "ConceptDictionary", "DictionaryError", "SolverError",
           "build_dictionary", "decompose", "recompose"]
