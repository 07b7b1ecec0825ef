"""The Encoder interface every backend implements (embedded, hf, laion, custom plug-ins).

An encoder maps fixed-length mono audio windows and text strings into one shared,
L2-normalised embedding space. Everything downstream (concept codes, indexes, queries,
evidence) talks to encoders only through this interface.
"""
from __future__ import annotations

import abc
import hashlib
import json
from dataclasses import dataclass, field
from typing import Any, Sequence

import numpy as np


class EncoderError(Exception):
    """An encoder cannot be loaded or used; the message says what is missing and what to do."""


@dataclass(frozen=True)
class EncoderInfo:
    """What a library records about the encoder it is bound to."""

    name: str  # the spec string that loads it again, e.g. "embedded", "hf:/models/clap"
    dim: int  # embedding dimension
    sample_rate: int  # Hz, the rate windows must be given in
    window_seconds: float  # native window length in seconds
    fingerprint: str  # hash of weights + config: vectors of different fingerprints never mix
    config: dict[str, Any] = field(default_factory=dict)


class Encoder(abc.ABC):
    """Audio/text encoder into one shared space.

    Implementations must be deterministic in eval mode, run without gradients, batch
    internally, and return float32 arrays whose rows have unit L2 norm.
    """

    name: str
    dim: int
    sample_rate: int
    window_seconds: float
    # Zero-shot prompts `bench classify` fills with each label unless told otherwise (averaged
    # when several): the CLAP paper's wording; encoders trained on other captions override it.
    default_prompts: tuple[str, ...] = ("This is a sound of {}",)

    @property
    def window_samples(self) -> int:
        """Native window length in samples at :attr:`sample_rate`."""
        return int(round(self.window_seconds * self.sample_rate))

    @property
    @abc.abstractmethod
    def fingerprint(self) -> str:
        """Stable hex digest of weights + config."""

    def config(self) -> dict[str, Any]:
        """JSON-serialisable configuration recorded in the library."""
        return {}

    @property
    def info(self) -> EncoderInfo:
        return EncoderInfo(
            name=self.name,
            dim=self.dim,
            sample_rate=self.sample_rate,
            window_seconds=self.window_seconds,
            fingerprint=self.fingerprint,
            config=self.config(),
        )

    @abc.abstractmethod
    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """Embed mono windows.

        Args:
            windows: (B, window_samples) float32 at :attr:`sample_rate`, values in [-1, 1].
        Returns:
            (B, dim) float32, unit L2 norm per row.
        """

    @abc.abstractmethod
    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Embed strings: (B, dim) float32, unit L2 norm per row."""

    def borrowed_labels(self, text: str, n: int = 5) -> list[tuple[str, float]]:
        """Training labels whose sounds were blended into the text vector of ``text``, heaviest
        first, with their blend weights (summing to ≤ 1 over all labels).

        Only encoders that mix query-time sound prototypes into text embeddings borrow anything
        (the embedded encoder); for the others the text vector is the text tower alone: [].
        """
        return []

    def embed_query(self, text: str) -> tuple[np.ndarray, list[tuple[str, float]]]:
        """One query's unit text vector (as :meth:`embed_text`) and :meth:`borrowed_labels` of it.

        Search calls this once per free-text query; encoders that borrow override it so the text
        tower runs once for both.
        """
        return self.embed_text([text])[0], self.borrowed_labels(text)

    def query_parts(self, text: str) -> tuple[np.ndarray, list[tuple[str, float]], Any]:
        """:meth:`embed_query` and :meth:`query_support` of one free-text query: what search needs
        of it. Encoders that can should override it so the text tower runs once for all three."""
        vec, borrowed = self.embed_query(text)
        return vec, borrowed, self.query_support([text])[0]

    def query_support(self, texts: Sequence[str]) -> list[Any]:
        """Per text, the labelled training sounds it names and how they score a sound (a
        ``sound_prototypes.QuerySupport``), or None.

        Only the embedded encoder ships its training sounds (exemplars, since v12); search and
        `bench classify` add their support term to a sound's cosine with the text vector. None
        for every text of the other encoders: the cosine alone ranks.
        """
        return [None] * len(texts)


def fingerprint_of(state: dict[str, Any] | None, config: dict[str, Any]) -> str:
    """Hash a torch state dict (or None) together with a JSON config: 16 hex digits."""
    h = hashlib.sha256(json.dumps(config, sort_keys=True, default=str).encode())
    if state is not None:
        for key in sorted(state):
            value = state[key]
            h.update(key.encode())
            arr = value.detach().cpu().contiguous().numpy() if hasattr(value, "detach") else np.asarray(value)
            h.update(str(arr.dtype).encode())
            h.update(str(arr.shape).encode())
            h.update(arr.tobytes())
    return h.hexdigest()[:16]


def l2_normalise(x: np.ndarray, eps: float = 1e-12) -> np.ndarray:
    """Row-wise unit norm, float32."""
    x = np.asarray(x, dtype=np.float32)
    n = np.linalg.norm(x, axis=-1, keepdims=True)
    return (x / np.maximum(n, eps)).astype(np.float32)


def check_windows(windows: np.ndarray, encoder: Encoder) -> np.ndarray:
    """Validate a batch of windows for ``encoder`` and return it as contiguous float32."""
    w = np.asarray(windows, dtype=np.float32)
    if w.ndim == 1:
        w = w[None, :]
    if w.ndim != 2:
        raise EncoderError(f"windows must be (B, samples), got shape {w.shape}")
    if w.shape[1] != encoder.window_samples:
        raise EncoderError(
            f"{encoder.name}: windows must have {encoder.window_samples} samples "
            f"({encoder.window_seconds} s at {encoder.sample_rate} Hz), got {w.shape[1]}"
        )
    if not np.all(np.isfinite(w)):
        raise EncoderError("windows contain NaN or Inf samples")
    return np.ascontiguousarray(w)


class DifferentiableAudioEncoder(abc.ABC):
    """Optional second face of an encoder, used by the L-MAC evidence module.

    It exposes the audio tower as a differentiable function of the *linear* STFT magnitude,
    so a mask on that spectrogram gets gradients through the mel projection.
    """

    @abc.abstractmethod
    def stft_params(self) -> dict[str, int]:
        """n_fft, hop_length, win_length (samples) of the STFT the tower expects."""

    @abc.abstractmethod
    def embed_from_magnitude(self, magnitude: "torch.Tensor", level_reference: "torch.Tensor | None" = None
                             ) -> tuple["torch.Tensor", list["torch.Tensor"]]:
        """(B, F, T) linear magnitude → ((B, dim) unit-norm embedding, [internal feature maps]).

        ``level_reference`` (B, F, T), when given, is the unmasked spectrogram of a masked
        ``magnitude``: an encoder that normalises loudness takes its gain from it, so a mask that
        only scales the sound down is seen as quieter, not undone. Encoders without level
        normalisation ignore it.
        """

    @abc.abstractmethod
    def text_tensor(self, texts: Sequence[str]) -> "torch.Tensor":
        """(B, dim) unit-norm text embeddings as a torch tensor on the tower's device."""
