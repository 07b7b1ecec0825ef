"""The concept dictionary: text embeddings of a vocabulary, centred and renormalised.

Building it is three lines of maths (embed, subtract the mean concept embedding, normalise);
the text embeddings are cached per (vocabulary hash, encoder fingerprint) in a directory the
caller names, because embedding 2,000 strings is the slow part.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from ..encoders.base import Encoder, l2_normalise
from .errors import DictionaryError

__all__ = ["ConceptDictionary", "DictionaryError", "build_dictionary", "centre_dictionary"]


@dataclass(frozen=True, eq=False)
class ConceptDictionary:
    """Centred, unit-norm concept atoms plus the two means that centre each modality.

    atoms: (k, d) float32, row j = normalise(text(concept j) − concept_mean).
    concept_mean: (d,) mean of the raw unit-norm concept text embeddings.
    audio_mean: (d,) mean audio embedding subtracted before decomposing (library's or encoder's).
    """

    concepts: tuple[str, ...]
    atoms: np.ndarray
    concept_mean: np.ndarray
    audio_mean: np.ndarray
    vocabulary_hash: str = ""
    encoder_fingerprint: str = ""
    _prepared: dict[str, Any] = field(default_factory=dict, repr=False, compare=False)

    def __post_init__(self) -> None:
        k, d = self.atoms.shape
        if len(self.concepts) != k:
            raise DictionaryError(f"{len(self.concepts)} concepts but {k} atoms")
        if self.concept_mean.shape != (d,) or self.audio_mean.shape != (d,):
            raise DictionaryError(f"means must have shape ({d},): rebuild the dictionary for this encoder")

    @property
    def dim(self) -> int:
        return int(self.atoms.shape[1])

    def with_audio_mean(self, audio_mean: np.ndarray) -> "ConceptDictionary":
        """The same dictionary centring audio with another mean (e.g. the library's own)."""
        return ConceptDictionary(self.concepts, self.atoms, self.concept_mean,
                                 np.asarray(audio_mean, np.float32).reshape(-1),
                                 self.vocabulary_hash, self.encoder_fingerprint)

    def prepared(self, device: str):
        """Solver-ready atoms + Gram matrix on ``device``, computed once per device."""
        if device not in self._prepared:
            import torch

            from .solver import prepare

            self._prepared[device] = prepare(torch.from_numpy(np.ascontiguousarray(self.atoms)), device=device)
        return self._prepared[device]


def centre_dictionary(text_embeddings: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(k, d) raw text embeddings → (normalise(E − mean), mean) with mean of the normalised rows."""
    e = l2_normalise(text_embeddings)
    mean = e.mean(axis=0)
    return l2_normalise(e - mean), mean.astype(np.float32)


def _cache_file(cache_dir: Path, vocabulary_hash: str, fingerprint: str) -> Path:
    return cache_dir / f"concepts-{vocabulary_hash}-{fingerprint}.npy"


def drop_cached_dictionaries(cache_dir: str | Path, fingerprint: str) -> int:
    """Delete the cached dictionaries of the encoder with ``fingerprint`` (every vocabulary);
    the bytes freed. A library that left that encoder has no use for them (~4 MB each)."""
    freed = 0
    for path in Path(cache_dir).glob(_cache_file(Path(), "*", fingerprint).name):
        freed += path.stat().st_size
        path.unlink(missing_ok=True)
    return freed


def build_dictionary(encoder: Encoder, vocabulary, audio_mean: np.ndarray | None = None,
                     cache_dir: str | Path | None = None, batch_size: int = 256) -> ConceptDictionary:
    """Embed ``vocabulary.concepts`` with ``encoder`` (or read the cache) and centre them.

    Args:
        encoder: any earmark Encoder.
        vocabulary: an ``earmark.vocabularies.Vocabulary`` (needs ``concepts`` and ``hash``).
        audio_mean: (d,) mean audio embedding; None uses a zero vector (no centring of audio),
            which the caller should replace with the library's mean via ``with_audio_mean``.
        cache_dir: directory for ``concepts-<vocab hash>-<encoder fingerprint>.npy``; None: no cache.
    """
    concepts = tuple(vocabulary.concepts)
    raw: np.ndarray | None = None
    path = _cache_file(Path(cache_dir), vocabulary.hash, encoder.fingerprint) if cache_dir else None
    if path is not None and path.exists():
        cached = np.load(path)
        if cached.shape == (len(concepts), encoder.dim):
            raw = cached
    if raw is None:
        parts = [encoder.embed_text(list(concepts[i:i + batch_size])) for i in range(0, len(concepts), batch_size)]
        raw = np.concatenate(parts).astype(np.float32)
        if raw.shape != (len(concepts), encoder.dim):
            raise DictionaryError(f"encoder returned {raw.shape} for {len(concepts)} concepts of dim {encoder.dim}")
        if path is not None:
            path.parent.mkdir(parents=True, exist_ok=True)
            tmp = path.with_name(path.name + ".tmp.npy")
            np.save(tmp, raw)
            tmp.replace(path)  # atomic: a crash never leaves a half-written cache entry
    atoms, mean = centre_dictionary(raw)
    am = np.zeros(encoder.dim, np.float32) if audio_mean is None else np.asarray(audio_mean, np.float32).reshape(-1)
    return ConceptDictionary(concepts, atoms, mean, am, vocabulary.hash, encoder.fingerprint)
