"""Listenable evidence (L-MAC): a mask over the linear spectrogram that carries a concept.

Public surface (imported lazily so ``import earmark`` does not pull in torch):

- :func:`render_evidence`, :class:`Evidence` — WAVs + PNG for one hit (``earmark evidence HIT``)
- :func:`train_decoder`, :class:`TrainConfig`, :func:`iter_batches`, :class:`SegmentExample`
  — self-supervised decoder training (``earmark evidence train``)
- :func:`evaluate_faithfulness` — AI/AD/AG/FF/Fid-In/SPS/COMP vs baselines (``earmark evidence eval``)
- :func:`load_checkpoint`, :class:`MaskDecoder`, :class:`ObjectiveWeights`, errors.
"""
from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "render_evidence": "render",
    "compute_mask": "render",
    "Evidence": "render",
    "EvidenceMask": "render",
    "train_decoder": "train",
    "TrainConfig": "train",
    "TrainResult": "train",
    "TrainingBatch": "train",
    "SegmentExample": "train",
    "iter_batches": "train",
    "evaluate_faithfulness": "evaluate",
    "EvaluationResult": "evaluate",
    "FaithfulnessScores": "metrics",
    "load_checkpoint": "checkpoint",
    "MaskDecoder": "decoder",
    "ObjectiveWeights": "objective",
    "gradient_saliency": "saliency",
    "EvidenceError": "errors",
    "CheckpointMismatch": "errors",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
