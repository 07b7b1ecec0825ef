"""Arithmetic precision of the mask pass (encoder feature maps + decoder).

On CPUs with AVX-512 BF16, the audio tower's convolutions run about twice as fast under bfloat16
autocast (10 s hit: 0.12 s against 0.054 s for the encoder pass); its embeddings stay within
cosine 0.999 of float32 and its feature maps within 2-4 % (docs/evidence.md has the mask
agreement and the faithfulness table of both). A render's mask pass and its similarity check
(the cosines of the original, masked-in and masked-out hit to the target, shown beside the
evidence) run this way; every faithfulness metric of `earmark evidence eval` is float32 whatever
precision made the masks. The gradient-saliency fallback is float32.
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch

from .errors import EvidenceError

PRECISIONS = ("auto", "fp32", "bf16")


def cpu_has_bf16() -> bool:
    """True when oneDNN runs bfloat16 convolutions natively on this CPU (AVX-512 BF16 or AMX)."""
    try:
        return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())
    except (AttributeError, RuntimeError):
        return False


def resolve_precision(precision: str, device: torch.device | str) -> str:
    """"fp32" or "bf16" for ``precision`` on ``device``: "auto" picks bf16 on a CPU that has it,
    fp32 elsewhere (on CUDA the mask pass is a small share of a render)."""
    if precision not in PRECISIONS:
        raise EvidenceError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    dev = torch.device(device)
    if precision == "auto":
        return "bf16" if dev.type == "cpu" and cpu_has_bf16() else "fp32"
    if precision == "bf16" and dev.type == "cpu" and not cpu_has_bf16():
        raise EvidenceError("this CPU has no native bfloat16 (AVX-512 BF16 or AMX); use precision fp32")
    return precision


@contextlib.contextmanager
def mask_autocast(precision: str, device: torch.device | str) -> Iterator[None]:
    """Autocast for a resolved ``precision`` ("fp32": no change)."""
    if precision == "fp32":
        yield
        return
    with torch.autocast(torch.device(device).type, dtype=torch.bfloat16):
        yield
