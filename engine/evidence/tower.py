"""Small helpers for using an encoder's towers from the evidence module (device, frozen weights, text cache)."""
from __future__ import annotations

import contextlib
from typing import Any, Iterator, Sequence

import torch
from torch import nn


@contextlib.contextmanager
def frozen(encoder: Any) -> Iterator[None]:
    """Turn off parameter gradients of the encoder's torch modules for the duration; restore after."""
    modules = [encoder] if isinstance(encoder, nn.Module) else []
    modules += [v for v in vars(encoder).values() if isinstance(v, nn.Module)]
    saved = [(p, p.requires_grad) for m in modules for p in m.parameters()]
    for p, _ in saved:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, flag in saved:
            p.requires_grad_(flag)


class TextCache:
    """Text embeddings on the encoder's device, computed once per distinct string."""

    def __init__(self, encoder: Any) -> None:
        self.encoder = encoder
        self._cache: dict[str, torch.Tensor] = {}

    def __call__(self, texts: Sequence[str]) -> torch.Tensor:
        missing = [t for t in dict.fromkeys(texts) if t not in self._cache]
        if missing:
            with torch.no_grad():
                emb = self.encoder.text_tensor(missing)
            for t, e in zip(missing, emb):
                self._cache[t] = e.detach()
        return torch.stack([self._cache[t] for t in texts])


def encoder_device(encoder: Any) -> torch.device:
    """The device the encoder's tensors live on (where its text embeddings come out)."""
    with torch.no_grad():
        return encoder.text_tensor(["device probe"]).device
