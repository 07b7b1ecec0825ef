"""Faithfulness evaluation of evidence masks against baselines, in one run (`earmark evidence eval`).

Zero-shot "class probability" (what earmark uses for a CLAP-style encoder): given K candidate
texts t_1..t_K (the caller's label set, or the vocabulary's most frequent concepts in the
library), Y = softmax_k(s · cos(f(X), t_k)) with s the encoder's logit scale (attribute
``logit_scale``, else 100). As in L-MAC, the explained class is the model's own prediction
c = argmax_k Y_k, and the mask is computed for the text t_c. Masks are applied to the linear
magnitude of one encoder window and fed back through ``embed_from_magnitude`` at the unmasked
window's level (``level_reference``; no resynthesis), exactly as during training.

Methods, all on the same windows and candidates:
- ``lmac``: the trained decoder;
- ``random``: i.i.d. uniform [0, 1] per bin (seeded);
- ``all-ones``: M = 1 (masked-in = original, masked-out = silence);
- ``gradient-saliency``: |∂cos/∂X| normalised to [0, 1] (see :mod:`.saliency`).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Sequence

import numpy as np
import torch

from .decoder import MaskDecoder
from .errors import EvidenceError
from .metrics import FaithfulnessScores, faithfulness_scores
from .objective import logit_scale_of, similarity_logits
from .precision import mask_autocast, resolve_precision
from .saliency import gradient_saliency
from .stft import STFTParams, magnitude_phase, stft
from .tower import encoder_device

BASELINES = ("random", "all-ones", "gradient-saliency")


@dataclass(frozen=True)
class EvaluationResult:
    scores: dict[str, FaithfulnessScores]  # method → means over the windows
    candidate_texts: list[str]
    logit_scale: float
    n_windows: int
    # Which windows these are, when a caller knows: a library's "held-out", "train" or "all".
    split: str = ""


def _probabilities(encoder: Any, magnitude: torch.Tensor, candidates: torch.Tensor, scale: float,
                   level_reference: torch.Tensor) -> np.ndarray:
    emb, _ = encoder.embed_from_magnitude(magnitude, level_reference=level_reference)
    # float64 before the (single) softmax so rows sum to 1 within the metrics' tolerance
    return torch.softmax(similarity_logits(emb, candidates, scale).double(), dim=1).cpu().numpy()


def evaluate_faithfulness(
    encoder: Any,
    waveforms: np.ndarray,
    candidate_texts: Sequence[str],
    decoder: MaskDecoder | None = None,
    methods: Sequence[str] | None = None,
    batch_size: int = 16,
    seed: int = 0,
    logit_scale: float | None = None,
    mask_precision: str = "fp32",
) -> EvaluationResult:
    """AI, AD, AG, FF, Fid-In, SPS, COMP for each method on (N, window_samples) windows.

    ``mask_precision`` is the arithmetic of the L-MAC mask pass (as rendering uses it,
    engine/evidence/precision.py); the probabilities the metrics compare are always float32.
    """
    methods = list(methods) if methods is not None else (["lmac"] if decoder is not None else []) + list(BASELINES)
    if "lmac" in methods and decoder is None:
        raise EvidenceError("method 'lmac' needs a trained decoder: run `earmark evidence train` first")
    unknown = set(methods) - {"lmac", *BASELINES}
    if unknown:
        raise EvidenceError(f"unknown evaluation methods {sorted(unknown)}; use lmac, {', '.join(BASELINES)}")
    texts = list(dict.fromkeys(candidate_texts))
    if len(texts) < 2:
        raise EvidenceError("need at least two distinct candidate texts for a class probability")
    wav = np.asarray(waveforms, dtype=np.float32)
    if wav.ndim != 2 or len(wav) == 0:
        raise EvidenceError(f"waveforms must be (N, samples) with N > 0, got {wav.shape}")
    scale = float(logit_scale) if logit_scale is not None else logit_scale_of(encoder)
    params = STFTParams.from_mapping(encoder.stft_params())
    device = encoder_device(encoder)
    prec = resolve_precision(mask_precision, device)
    with torch.no_grad():
        candidates = encoder.text_tensor(texts)
    gen = torch.Generator(device="cpu").manual_seed(seed)
    if decoder is not None:
        decoder.to(device).eval()

    acc: dict[str, dict[str, list[np.ndarray]]] = {m: {"y": [], "o": [], "q": [], "m": []} for m in methods}
    for a in range(0, len(wav), batch_size):
        x = torch.from_numpy(wav[a : a + batch_size]).to(device)
        with torch.no_grad():
            mag, _ = magnitude_phase(stft(x, params))
            emb, fmaps = encoder.embed_from_magnitude(mag)
            y_t = torch.softmax(similarity_logits(emb, candidates, scale).double(), dim=1)
            y = y_t.cpu().numpy()
            target = candidates[y_t.argmax(dim=1)]
        for method in methods:
            if method == "gradient-saliency":
                mask = gradient_saliency(encoder, mag, target)
            else:
                with torch.no_grad():
                    if method == "lmac":
                        assert decoder is not None
                        if prec == "fp32":
                            mask = decoder(fmaps, target, mag)
                        else:  # the encoder pass again under autocast, as compute_mask runs it
                            with mask_autocast(prec, device):
                                _, fm16 = encoder.embed_from_magnitude(mag)
                                mask = decoder(fm16, target, mag).float().clamp(0.0, 1.0)
                    elif method == "random":
                        mask = torch.rand(mag.shape, generator=gen).to(device)
                    else:  # all-ones
                        mask = torch.ones_like(mag)
            with torch.no_grad():
                # masked inputs at the original's level: a mask that only turns the sound down
                # is a change the encoder sees (its front end would otherwise undo it)
                o = _probabilities(encoder, mask * mag, candidates, scale, mag)
                q = _probabilities(encoder, (1.0 - mask) * mag, candidates, scale, mag)
            acc[method]["y"].append(y)
            acc[method]["o"].append(o)
            acc[method]["q"].append(q)
            acc[method]["m"].append(mask.float().cpu().numpy())

    scores = {}
    for method, parts in acc.items():
        cat = {k: np.concatenate(v) for k, v in parts.items()}
        scores[method] = faithfulness_scores(cat["y"], cat["o"], cat["q"], cat["m"])
    return EvaluationResult(scores=scores, candidate_texts=texts, logit_scale=scale, n_windows=len(wav))
