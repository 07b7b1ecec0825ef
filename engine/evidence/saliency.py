"""Gradient saliency: the labelled fallback when no trained L-MAC decoder exists.

S = |∂ cos(f(X), t) / ∂X| on the linear magnitude X, divided by its maximum per example so it
lies in [0, 1] and can be used as a mask. It is *not* an L-MAC mask: it says which bins the
similarity is locally most sensitive to, not which sound carries the concept. Everything that
shows it labels it with :data:`SALIENCY_LABEL` and ``method = "gradient-saliency"``.
"""
from __future__ import annotations

from typing import Any

import torch

from .tower import frozen

SALIENCY_METHOD = "gradient-saliency"
SALIENCY_LABEL = "GRADIENT SALIENCY (fallback: no trained L-MAC decoder)"


def gradient_saliency(encoder: Any, magnitude: torch.Tensor, text_embedding: torch.Tensor) -> torch.Tensor:
    """(B, F, T) magnitude, (B, d) unit-norm target texts → (B, F, T) saliency in [0, 1]."""
    x = magnitude.detach().clone().requires_grad_(True)
    with frozen(encoder), torch.enable_grad():
        emb, _ = encoder.embed_from_magnitude(x)
        similarity = (emb * text_embedding.detach()).sum()
        (grad,) = torch.autograd.grad(similarity, x)
    sal = grad.abs()
    peak = sal.flatten(1).amax(dim=1).clamp(min=1e-30)[:, None, None]
    return (sal / peak).detach()
