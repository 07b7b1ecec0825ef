"""`earmark bench`: reproducible zero-shot classification and retrieval benchmarks.

Dense embeddings against concept codes (several vocabularies and sparsities) and the paper's
adapter, on local copies of public datasets (ESC-50, UrbanSound8K, Clotho, AudioCaps, a
folder-per-class layout, a generic CSV, the embedded encoder's corpus manifest).

- ``datasets``: readers → :class:`Dataset` of :class:`Item` (path, labels, captions, fold).
- ``embed_cache``: one embedding per clip (mean of its deterministic windows), and concept
  codes, cached per (dataset, encoder).
- ``classify`` / ``retrieve``: pure metric code.
- ``run``: the two benchmarks, dense against concept against adapter.
- ``report``: Table-I style table, JSON and PNG plots.
"""
from .errors import BenchError

__all__ = ["BenchError"]
