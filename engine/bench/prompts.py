"""Zero-shot class prompts: which templates `bench classify` fills with each label, and how several
templates make one text vector per label.

Unless told otherwise, classify uses the encoder's own ``default_prompts``: CLAP checkpoints the
paper's ``This is a sound of {}``; the embedded encoder the bare label and that sentence,
averaged (docs/model-card.md, "Through the product path": the bare label scored 0.399 pooled /
0.477 package mean on the everyday stand-in, the sentence 0.377 / 0.474, both averaged 0.399 /
0.487). Several prompts are averaged as unit vectors and renormalised, as CLAP's prompt ensembles.
"""
from __future__ import annotations

from typing import Callable, Sequence

import numpy as np

from ..encoders.base import Encoder, l2_normalise
from .errors import BenchError

__all__ = ["label_text", "resolve_prompts"]


def resolve_prompts(encoder: Encoder, prompts: Sequence[str] | None) -> tuple[str, ...]:
    """The prompts to use: ``prompts`` when given, else the encoder's defaults; each needs a {}."""
    chosen = tuple(prompts) if prompts else tuple(encoder.default_prompts)
    for p in chosen:
        if "{}" not in p:
            raise BenchError(f"--prompt must contain '{{}}' where the label goes, got {p!r}")
    return chosen


def label_text(labels: Sequence[str], prompts: Sequence[str],
               embed: Callable[[list[str]], np.ndarray]) -> np.ndarray:
    """(K, d) unit text vector per label: the renormalised mean of its prompts' unit embeddings.

    ``_`` in a label reads as a space (ESC-50's ``crying_baby``).
    """
    names = [lab.replace("_", " ") for lab in labels]
    total = np.zeros(0)
    for p in prompts:
        emb = l2_normalise(embed([p.format(n) for n in names]))
        total = emb if total.size == 0 else total + emb
    return l2_normalise(total)
