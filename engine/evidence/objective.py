"""The L-MAC training objective for a CLAP-style (zero-shot) encoder.

For one example with linear magnitude X, mask M, and a target text among K candidate texts:

    p(·| Y)   = softmax_k( s · cos(f(Y), t_k) )          zero-shot "class probability"
    L_in      = −log p(target | M ⊙ X)                   masked-in keeps the target
    L_out     = −log(1 − p(target | (1 − M) ⊙ X))        masked-out should lose it
    L_sparse  = mean_{f,t} |M|                           per example, over its own bins
    loss      = w_in · L_in + w_out · L_out + w_sparse · L_sparse     (averaged over the batch)

with L-MAC's weights w_in = 4, w_out = 0.2, w_sparse = 0.4 (Paissan et al., ICML 2024) and s
the encoder's logit scale. Every term is computed per example and then averaged, so the
weights mean the same thing at any batch size (L-MAC's reference code sums the L1 term over
the batch, which silently scales it by the batch size).

One deliberate change: L-MAC *maximises* the cross-entropy of the masked-out input
(−w_out · CE_out). With a zero-shot logit scale (s up to 100) that term ranges over
2s + log K ≈ 200 nats and swamps the other two: the decoder keeps enlarging the mask to push
an already-lost target further down. ``−log(1 − p_out)`` pushes the same way but reaches zero
once the masked-out input no longer predicts the target, leaving the sparsity term in charge.

Candidates that are near-synonyms of an example's target (text cosine above
``synonym_cosine``, e.g. "beep" for "tone") are left out of that example's softmax: a mask
cannot separate a sound from its own synonyms, and keeping them would cap p(target) at 1/2.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F

# CLIP/CLAP convention when an encoder does not state its own (CLAP's learned scale saturates at 100).
DEFAULT_LOGIT_SCALE = 100.0


@dataclass(frozen=True)
class ObjectiveWeights:
    """Weights of the named loss terms (L-MAC's values as defaults)."""

    mask_in: float = 4.0
    mask_out: float = 0.2
    sparsity: float = 0.4
    synonym_cosine: float = 0.9  # candidates closer than this to the target are excluded


@dataclass
class LossTerms:
    """Batch means of each term (tensors, so ``total`` can be back-propagated)."""

    total: torch.Tensor
    mask_in: torch.Tensor  # mean L_in, nats
    mask_out: torch.Tensor  # mean L_out = −log(1 − p_out(target)), nats
    sparsity: torch.Tensor  # mean |M|, in [0, 1]

    def as_floats(self) -> dict[str, float]:
        return {k: float(getattr(self, k).detach()) for k in ("total", "mask_in", "mask_out", "sparsity")}


def logit_scale_of(encoder: Any, default: float = DEFAULT_LOGIT_SCALE) -> float:
    """The encoder's zero-shot logit scale ``s`` (attribute ``logit_scale``), else ``default``."""
    s = getattr(encoder, "logit_scale", None)
    if s is None:
        return float(default)
    return float(s.detach()) if isinstance(s, torch.Tensor) else float(s)


def similarity_logits(audio: torch.Tensor, texts: torch.Tensor, logit_scale: float) -> torch.Tensor:
    """(B, d) audio and (K, d) text embeddings, both unit norm → (B, K) logits ``s · cos``."""
    return logit_scale * audio @ texts.T


def synonym_mask(candidates: torch.Tensor, target_index: torch.Tensor, threshold: float) -> torch.Tensor:
    """(B, K) True where candidate k is a near-synonym of example b's target (never the target itself)."""
    cos = candidates[target_index] @ candidates.T
    mask = cos > threshold
    mask[torch.arange(len(target_index), device=mask.device), target_index] = False
    return mask


def lmac_objective(
    encoder: Any,
    magnitude: torch.Tensor,
    mask: torch.Tensor,
    candidates: torch.Tensor,
    target_index: torch.Tensor,
    weights: ObjectiveWeights = ObjectiveWeights(),
    logit_scale: float = DEFAULT_LOGIT_SCALE,
) -> LossTerms:
    """L-MAC loss of ``mask`` (B, F, T) on ``magnitude`` (B, F, T).

    ``candidates`` (K, d) are unit-norm text embeddings; ``target_index`` (B,) picks each
    example's target among them. Gradients flow through the encoder's mel projection into the mask.
    """
    b = magnitude.shape[0]
    both = torch.cat([mask * magnitude, (1.0 - mask) * magnitude], dim=0)
    # One pass for masked-in and masked-out, both at the original's level (see embed_from_magnitude).
    emb, _ = encoder.embed_from_magnitude(both, level_reference=magnitude.repeat(2, 1, 1))
    logits = similarity_logits(emb, candidates, logit_scale)
    logits = logits.masked_fill(synonym_mask(candidates, target_index, weights.synonym_cosine).repeat(2, 1), float("-inf"))
    l_in = F.cross_entropy(logits[:b], target_index, reduction="none")
    log_p_out = torch.log_softmax(logits[b:], dim=1).gather(1, target_index[:, None])[:, 0]
    l_out = -torch.log1p(-log_p_out.exp().clamp(max=1.0 - 1e-6))
    l_sparse = mask.abs().flatten(1).mean(dim=1)
    per_example = weights.mask_in * l_in + weights.mask_out * l_out + weights.sparsity * l_sparse
    return LossTerms(per_example.mean(), l_in.mean(), l_out.mean(), l_sparse.mean())
