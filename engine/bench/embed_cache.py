"""One embedding per clip, and concept codes of those embeddings, cached on disk.

A clip's embedding pools the embeddings of its deterministic windows (engine/windows.py: the
encoder's native length, hop half a window), renormalised: by default each window weighted by its
mean power (``pooling="energy"``), so that near-silent tails and the zero-padded end count for
little, or the plain mean (``"mean"``). Embeddings are cached in one ``.npz`` per
(dataset audio fingerprint, encoder fingerprint, hop, pooling), so comparing vocabularies and sparsity
levels never re-embeds audio; codes are cached per (embeddings, vocabulary hash, sparsity,
audio mean, adapter) next to them. Default cache: ``bench`` in earmark's user cache (engine/user_cache.py; ``~/.cache/earmark/bench``).
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Callable

import numpy as np
import scipy.sparse as sp

from ..audio import AudioError, probe, stream_mono
from ..concepts.decompose import ConceptCodes
from ..encoders.base import Encoder
from ..user_cache import cache_root
from ..window_pooling import DEFAULT_POOLING, POOLINGS, embed_and_pool
from ..windows import iter_windows
from .datasets import Dataset
from .errors import BenchError

__all__ = ["DEFAULT_CACHE", "DEFAULT_POOLING", "POOLINGS", "cached_codes", "cached_text", "clip_embedding",
           "clip_embeddings", "embeddings_key"]

DEFAULT_CACHE = cache_root() / "bench"
_FORMAT = "earmark-bench-embeddings/1"
_WINDOW_BATCH = 64  # windows per encoder call


def _digest(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def clip_embedding(path: str, encoder: Encoder, hop_samples: int | None = None,
                   pooling: str = DEFAULT_POOLING) -> np.ndarray:
    """(d,) unit-norm pool of the encoder's embeddings of the file's deterministic windows.

    ``pooling`` "energy" weights each window by its mean power (engine/window_pooling.py);
    "mean": unweighted.
    """
    if pooling not in POOLINGS:
        raise BenchError(f"clip pooling must be one of {', '.join(POOLINGS)}, not {pooling!r}")
    hop = hop_samples or encoder.window_samples // 2
    try:
        info = probe(path)
        windows = iter_windows(stream_mono(path, encoder.sample_rate, info), encoder.sample_rate,
                               encoder.window_samples, hop)
        pooled = embed_and_pool(encoder, (w.samples for w in windows), pooling, batch=_WINDOW_BATCH)
    except AudioError as exc:
        raise BenchError(f"cannot decode {exc.path}: {exc.reason}") from exc
    if pooled is None:
        raise BenchError(f"{path}: no audio samples after decoding")
    return pooled


def embeddings_key(dataset: Dataset, encoder: Encoder, hop_samples: int | None = None,
                   pooling: str = DEFAULT_POOLING) -> str:
    hop = hop_samples or encoder.window_samples // 2
    return _digest(dataset.audio_fingerprint(), encoder.fingerprint, encoder.window_samples, hop, pooling)


def clip_embeddings(dataset: Dataset, encoder: Encoder, cache_dir: str | Path | None = DEFAULT_CACHE,
                    hop_samples: int | None = None, progress: bool = False,
                    pooling: str = DEFAULT_POOLING) -> tuple[np.ndarray, str]:
    """((n, d) float32 clip embeddings in dataset order, cache key); read from the cache when there.

    ``cache_dir`` None disables the cache.
    """
    from tqdm import tqdm

    key = embeddings_key(dataset, encoder, hop_samples, pooling)
    paths = np.array([it.path for it in dataset.items])
    file = Path(cache_dir) / f"emb-{key}.npz" if cache_dir else None
    if file is not None and file.exists():
        try:
            z = np.load(file, allow_pickle=False)
            if str(z["format"]) == _FORMAT and np.array_equal(z["paths"], paths):
                return z["emb"].astype(np.float32), key
        except (OSError, ValueError, KeyError):
            pass  # unreadable or foreign: recompute and overwrite
    rows = []
    for it in tqdm(dataset.items, desc=f"embedding {dataset.name}", unit="clip", disable=not progress,
                   dynamic_ncols=True):
        rows.append(clip_embedding(it.path, encoder, hop_samples, pooling))
    emb = np.stack(rows).astype(np.float32)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.name + ".tmp.npz")
        np.savez(tmp, format=_FORMAT, paths=paths, emb=emb, encoder=encoder.fingerprint, dataset=dataset.name)
        tmp.replace(file)  # atomic: a crash never leaves a half-written entry
    return emb, key


def cached_codes(cache_dir: str | Path | None, key_parts: dict, concepts: tuple[str, ...],
                 compute: Callable[[], ConceptCodes]) -> ConceptCodes:
    """Concept codes for ``key_parts`` (embeddings key, vocabulary hash, λ or L0, mean, adapter).

    ``compute`` runs only on a cache miss; its result is stored (CSR arrays, L0, fidelity, λ).
    """
    file = Path(cache_dir) / f"codes-{_digest(key_parts)}.npz" if cache_dir else None
    if file is not None and file.exists():
        try:
            z = np.load(file, allow_pickle=False)
            w = sp.csr_matrix((z["data"], z["indices"], z["indptr"]), shape=tuple(z["shape"]))
            if w.shape[1] == len(concepts):
                return ConceptCodes(w, z["l0"], z["fidelity"], z["lam"], concepts)
        except (OSError, ValueError, KeyError):
            pass
    codes = compute()
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.name + ".tmp.npz")
        w = codes.weights
        np.savez(tmp, data=w.data, indices=w.indices, indptr=w.indptr, shape=np.array(w.shape), l0=codes.l0,
                 fidelity=codes.fidelity, lam=codes.lam, key=json.dumps(key_parts, sort_keys=True, default=str))
        tmp.replace(file)
    return codes


def cached_text(texts: list[str], encoder: Encoder, cache_dir: str | Path | None = DEFAULT_CACHE,
                batch_size: int = 256, progress: bool = False, desc: str = "text") -> np.ndarray:
    """(len(texts), d) text embeddings (prompts, captions), cached per (texts, encoder fingerprint)."""
    from tqdm import tqdm

    file = Path(cache_dir) / f"text-{_digest(encoder.fingerprint, texts)}.npy" if cache_dir else None
    if file is not None and file.exists():
        cached = np.load(file)
        if cached.shape == (len(texts), encoder.dim):
            return cached.astype(np.float32)
    parts = [encoder.embed_text(texts[i:i + batch_size])
             for i in tqdm(range(0, len(texts), batch_size), desc=desc, unit="batch", disable=not progress,
                           dynamic_ncols=True)]
    emb = np.concatenate(parts).astype(np.float32) if parts else np.zeros((0, encoder.dim), np.float32)
    if file is not None:
        file.parent.mkdir(parents=True, exist_ok=True)
        tmp = file.with_name(file.name + ".tmp.npy")
        np.save(tmp, emb)
        tmp.replace(file)
    return emb
