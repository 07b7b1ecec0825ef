"""The paper's fine-tuning: a d×d linear adapter H with H·z ≈ text("This is a sound of [label]").

Trained on labelled audio embeddings by ridge regression toward the identity,

    H = argmin_H ‖H Z − T‖² + α‖H − I‖²  =  (T Zᵀ + αI)(Z Zᵀ + αI)⁻¹,

a closed form: deterministic, no learning-rate schedule, and α pulls H back to "do nothing"
where the labels say nothing. Concept codes are then computed from normalise(H·z).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from ..encoders.base import l2_normalise

__all__ = ["DEFAULT_PROMPT", "Adapter", "AdapterError", "train_adapter"]

DEFAULT_PROMPT = "This is a sound of {}"
_FORMAT = "earmark-concept-adapter/1"


class AdapterError(Exception):
    """An adapter cannot be trained, loaded or applied; the message says what to fix."""


@dataclass(frozen=True, eq=False)
class Adapter:
    """A d×d linear map applied to unit-norm audio embeddings before decomposition."""

    matrix: np.ndarray  # (d, d) float32
    prompt: str = DEFAULT_PROMPT
    alpha: float = 1.0
    encoder_fingerprint: str = ""
    metrics: dict[str, float] = field(default_factory=dict)

    @property
    def dim(self) -> int:
        return int(self.matrix.shape[0])

    def apply(self, embeddings: np.ndarray) -> np.ndarray:
        """(n, d) → (n, d) unit-norm normalise(H·z)."""
        x = np.asarray(embeddings, np.float32)
        if x.ndim != 2 or x.shape[1] != self.dim:
            raise AdapterError(f"adapter expects (n, {self.dim}) embeddings, got {x.shape}")
        return l2_normalise(x @ self.matrix.T)

    def save(self, path: str | Path) -> Path:
        """Write to ``path`` (.npz), atomically."""
        path = Path(path)
        tmp = path.with_name(path.name + ".tmp.npz")
        np.savez(tmp, format=_FORMAT, matrix=self.matrix, prompt=self.prompt, alpha=self.alpha,
                 encoder_fingerprint=self.encoder_fingerprint,
                 metric_names=np.array(list(self.metrics), dtype=str),
                 metric_values=np.array(list(self.metrics.values()), dtype=np.float64))
        tmp.replace(path)
        return path

    @classmethod
    def load(cls, path: str | Path) -> "Adapter":
        try:
            data = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as exc:
            raise AdapterError(f"cannot read adapter {path}: {exc}") from exc
        if "format" not in data.files or str(data["format"]) != _FORMAT:
            raise AdapterError(f"{path} is not an earmark concept adapter (train one with train_adapter)")
        metrics = dict(zip(data["metric_names"].tolist(), data["metric_values"].tolist()))
        return cls(data["matrix"].astype(np.float32), str(data["prompt"]), float(data["alpha"]),
                   str(data["encoder_fingerprint"]), metrics)


def train_adapter(audio_emb: np.ndarray, labels: Sequence[str], text_encode_fn: Callable[[list[str]], np.ndarray],
                  *, alpha: float = 1.0, prompt: str = DEFAULT_PROMPT, encoder_fingerprint: str = "") -> Adapter:
    """Fit H so that H·z matches the text embedding of ``prompt.format(label)`` for each row.

    Args:
        audio_emb: (n, d) unit-norm audio embeddings. labels: n label strings.
        text_encode_fn: list[str] → (m, d) unit-norm text embeddings (an Encoder's ``embed_text``).
        alpha: ridge weight pulling H toward the identity (larger: closer to no change).
    Returns:
        The adapter, with metrics: mean cosine(z, t) before and cosine(normalise(Hz), t) after.
    """
    z = l2_normalise(np.asarray(audio_emb, np.float32))
    if z.ndim != 2 or len(labels) != len(z) or len(z) == 0:
        raise AdapterError(f"need one label per embedding: {len(labels)} labels for {len(z)} embeddings")
    if alpha <= 0:
        raise AdapterError("alpha must be > 0 (it keeps H close to the identity)")
    names = sorted(set(labels))
    text = l2_normalise(text_encode_fn([prompt.format(n) for n in names]))
    if text.shape != (len(names), z.shape[1]):
        raise AdapterError(f"text embeddings have shape {text.shape}, expected ({len(names)}, {z.shape[1]})")
    t = text[[names.index(lbl) for lbl in labels]]
    d = z.shape[1]
    z64, t64 = z.astype(np.float64), t.astype(np.float64)
    eye = np.eye(d)
    # H (ZᵀZ + αI) = TᵀZ + αI, with rows as samples; solve the symmetric system instead of inverting.
    h = np.linalg.solve(z64.T @ z64 + alpha * eye, (t64.T @ z64 + alpha * eye).T).T
    before = float(np.mean(np.sum(z * t, axis=1)))
    after = float(np.mean(np.sum(l2_normalise(z @ h.T.astype(np.float32)) * t, axis=1)))
    return Adapter(h.astype(np.float32), prompt, float(alpha), encoder_fingerprint,
                   {"cos_before": before, "cos_after": after, "n": float(len(z)), "labels": float(len(names))})
