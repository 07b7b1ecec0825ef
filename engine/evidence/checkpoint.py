"""Decoder checkpoints: one file, tied to the encoder fingerprint, written atomically."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from ...index.files import atomic_write
from .decoder import DecoderConfig, MaskDecoder
from .errors import CheckpointMismatch, EvidenceError

FORMAT = "earmark-lmac-decoder/1"


@dataclass
class DecoderCheckpoint:
    """What a checkpoint holds besides the weights."""

    encoder_fingerprint: str | None
    config: DecoderConfig
    step: int  # optimisation steps done
    optimizer_state: dict[str, Any] | None = None
    history: list[dict[str, float]] = field(default_factory=list)  # per-step loss terms
    train_config: dict[str, Any] = field(default_factory=dict)


def save_checkpoint(path: str | Path, decoder: MaskDecoder, meta: DecoderCheckpoint) -> Path:
    """Write ``decoder`` + ``meta`` to ``path`` via a temporary file, fsync and rename."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        "format": FORMAT,
        "encoder_fingerprint": meta.encoder_fingerprint,
        "decoder_config": meta.config.to_dict(),
        "decoder_state": {k: v.detach().cpu() for k, v in decoder.state_dict().items()},
        "optimizer_state": meta.optimizer_state,
        "step": meta.step,
        "history": meta.history,
        "train_config": meta.train_config,
    }
    def write(tmp: Path) -> None:
        with open(tmp, "wb") as f:  # through a handle: torch names the archive inside "archive", as always
            torch.save(payload, f)

    atomic_write(path, write)
    return path


def load_checkpoint(
    path: str | Path, encoder_fingerprint: str | None = None, device: str | torch.device = "cpu"
) -> tuple[MaskDecoder, DecoderCheckpoint]:
    """Load a decoder; raise CheckpointMismatch when it was trained for another encoder."""
    path = Path(path)
    if not path.exists():
        raise EvidenceError(f"no decoder checkpoint at {path}: train one with `earmark evidence train`")
    try:
        payload = torch.load(path, map_location="cpu", weights_only=False)
    except Exception as exc:  # a truncated or foreign file
        raise EvidenceError(f"cannot read decoder checkpoint {path}: {exc}; delete it and retrain") from exc
    if not isinstance(payload, dict) or payload.get("format") != FORMAT:
        raise EvidenceError(f"{path} is not an earmark decoder checkpoint ({FORMAT})")
    stored = payload.get("encoder_fingerprint")
    if encoder_fingerprint is not None and stored is not None and stored != encoder_fingerprint:
        raise CheckpointMismatch(
            f"decoder checkpoint {path} was trained for encoder {stored}, this library uses "
            f"{encoder_fingerprint}: retrain with `earmark evidence train`"
        )
    config = DecoderConfig.from_dict(payload["decoder_config"])
    decoder = MaskDecoder(config)
    decoder.load_state_dict(payload["decoder_state"])
    meta = DecoderCheckpoint(
        encoder_fingerprint=stored,
        config=config,
        step=int(payload["step"]),
        optimizer_state=payload.get("optimizer_state"),
        history=list(payload.get("history", [])),
        train_config=dict(payload.get("train_config", {})),
    )
    return decoder.to(device).eval(), meta
