"""Self-supervised training of the L-MAC decoder on a library's own segments.

Each step: a batch of encoder-length windows with one target text each (sampled from the
segment's own top concepts or its caption), candidates = the batch's distinct targets plus
fixed negatives, loss = :func:`lmac_objective`. The encoder stays frozen; only the decoder
learns. Progress is shown with tqdm; the checkpoint is saved every ``save_every`` steps and at
the end, and training resumes from it (same encoder fingerprint) up to ``config.steps``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterable, Iterator, Sequence

import numpy as np
import torch
from torch import nn
from tqdm.auto import tqdm

from .checkpoint import DecoderCheckpoint, load_checkpoint, save_checkpoint
from .decoder import MaskDecoder
from .errors import EvidenceError
from .objective import LossTerms, ObjectiveWeights, lmac_objective, logit_scale_of
from .stft import STFTParams, magnitude_phase, stft
from .tower import TextCache, encoder_device, frozen


@dataclass(frozen=True)
class TrainConfig:
    """Decoder training settings. ``steps`` is the total, counting steps done before a resume."""

    steps: int = 2000
    lr: float = 1e-3
    weights: ObjectiveWeights = field(default_factory=ObjectiveWeights)
    logit_scale: float | None = None  # None: the encoder's own (attribute logit_scale) or 100
    hidden: int = 32
    save_every: int = 200
    grad_clip: float = 1.0
    seed: int = 0


@dataclass(frozen=True)
class TrainingBatch:
    """Windows at the encoder's rate and length, one target text per window."""

    waveforms: np.ndarray  # (B, window_samples) float32
    targets: Sequence[str]


@dataclass(frozen=True)
class SegmentExample:
    """One segment for training: its samples, its top concepts (best first), its caption if any,
    and the encoder's decision among the candidate texts (the class L-MAC's metrics explain)."""

    waveform: np.ndarray
    concepts: Sequence[str]
    caption: str | None = None
    decision: str | None = None


@dataclass
class TrainResult:
    decoder: MaskDecoder
    checkpoint_path: Path
    start_step: int  # steps already done when this call began (0 for a fresh run)
    steps_done: int  # total steps in the checkpoint now
    history: list[dict[str, float]]  # loss terms per step, the whole run


def sample_target(example: SegmentExample, rng: np.random.Generator, top_k: int = 5, caption_prob: float = 0.25,
                  decision_prob: float = 0.0) -> str:
    """A target text for one segment: its decision with probability ``decision_prob`` (when it has
    one), else its caption with probability ``caption_prob``, else one of its top-k concepts."""
    if example.decision and rng.random() < decision_prob:
        return example.decision
    concepts = list(example.concepts)[:top_k]
    if example.caption and (not concepts or rng.random() < caption_prob):
        return example.caption
    if not concepts:
        raise EvidenceError("segment has neither concepts nor a caption to train on")
    return concepts[int(rng.integers(len(concepts)))]


def iter_batches(
    segments: Sequence[SegmentExample],
    batch_size: int,
    seed: int = 0,
    top_k: int = 5,
    caption_prob: float = 0.25,
    decision_prob: float = 0.0,
) -> Iterator[TrainingBatch]:
    """Endless shuffled batches over ``segments`` (reshuffled every pass), targets sampled afresh."""
    usable = [i for i, s in enumerate(segments) if s.caption or len(s.concepts) or s.decision]
    if not usable:
        raise EvidenceError("no segment has concepts or a caption: index the library (concept codes) first")
    rng = np.random.default_rng(seed)
    while True:
        order = rng.permutation(usable)
        # full batches only (the remainder joins the next pass); a library smaller than one
        # batch gives one short batch per pass
        n_batches = max(1, len(order) // batch_size)
        for a in range(0, n_batches * batch_size, batch_size):
            idx = order[a : a + batch_size]
            yield TrainingBatch(
                waveforms=np.stack([np.asarray(segments[i].waveform, np.float32) for i in idx]),
                targets=[sample_target(segments[i], rng, top_k, caption_prob, decision_prob) for i in idx],
            )


def train_step(
    encoder: Any,
    decoder: MaskDecoder,
    batch: TrainingBatch,
    texts: TextCache,
    negatives: Sequence[str],
    params: STFTParams,
    weights: ObjectiveWeights,
    logit_scale: float,
) -> LossTerms:
    """Forward one batch and return its loss terms (no optimiser step)."""
    device = decoder.freq_proj.device
    wav = torch.as_tensor(np.asarray(batch.waveforms, np.float32), device=device)
    magnitude, _ = magnitude_phase(stft(wav, params))
    candidates_txt = list(dict.fromkeys(list(batch.targets) + list(negatives)))
    candidates = texts(candidates_txt)
    index = {t: i for i, t in enumerate(candidates_txt)}
    target_index = torch.tensor([index[t] for t in batch.targets], device=device)
    with torch.no_grad():
        _, fmaps = encoder.embed_from_magnitude(magnitude)
    mask = decoder([f.detach() for f in fmaps], candidates[target_index], magnitude)
    return lmac_objective(encoder, magnitude, mask, candidates, target_index, weights, logit_scale)


def train_decoder(
    encoder: Any,
    batches: Iterable[TrainingBatch],
    checkpoint_path: str | Path,
    config: TrainConfig = TrainConfig(),
    negatives: Sequence[str] = (),
    encoder_fingerprint: str | None = None,
    progress: bool = True,
    record: dict[str, Any] | None = None,
) -> TrainResult:
    """Train (or resume training) the L-MAC decoder for ``encoder`` up to ``config.steps`` steps.

    ``batches`` yields :class:`TrainingBatch` (see :func:`iter_batches`); ``negatives`` are extra
    candidate texts (e.g. frequent vocabulary concepts) so the target competes with more than
    the batch's other targets. The checkpoint at ``checkpoint_path`` is resumed when present;
    a checkpoint of another encoder fingerprint raises CheckpointMismatch. ``record``: more
    entries for the checkpoint's ``train_config`` (how the caller chose the examples).
    """
    checkpoint_path = Path(checkpoint_path)
    fingerprint = encoder_fingerprint or getattr(encoder, "fingerprint", None)
    device = encoder_device(encoder)
    params = STFTParams.from_mapping(encoder.stft_params())
    logit_scale = config.logit_scale if config.logit_scale is not None else logit_scale_of(encoder)
    torch.manual_seed(config.seed)

    history: list[dict[str, float]] = []
    if checkpoint_path.exists():
        decoder, meta = load_checkpoint(checkpoint_path, fingerprint, device)
        start, history = meta.step, meta.history
        opt_state = meta.optimizer_state
    else:
        decoder = MaskDecoder.for_encoder(encoder, hidden=config.hidden)
        start, opt_state = 0, None
    decoder.to(device).train()
    optimizer = torch.optim.Adam(decoder.parameters(), lr=config.lr)
    if opt_state:
        optimizer.load_state_dict(opt_state)

    def checkpoint(step: int) -> None:
        meta = DecoderCheckpoint(
            encoder_fingerprint=fingerprint,
            config=decoder.config,
            step=step,
            optimizer_state=optimizer.state_dict(),
            history=history,
            train_config={**asdict(config), "logit_scale": logit_scale, "negatives": list(negatives), **(record or {})},
        )
        save_checkpoint(checkpoint_path, decoder, meta)

    texts = TextCache(encoder)
    step = start
    it = iter(batches)
    with frozen(encoder), tqdm(total=config.steps, initial=start, disable=not progress, desc="evidence decoder", unit="step") as bar:
        while step < config.steps:
            try:
                batch = next(it)
            except StopIteration:
                break  # a finite iterable ends the run early; the checkpoint below records where
            terms = train_step(encoder, decoder, batch, texts, negatives, params, config.weights, logit_scale)
            optimizer.zero_grad(set_to_none=True)
            terms.total.backward()
            if config.grad_clip:
                nn.utils.clip_grad_norm_(decoder.parameters(), config.grad_clip)
            optimizer.step()
            step += 1
            history.append(terms.as_floats())
            bar.update(1)
            if step % 10 == 0 or step == config.steps:
                h = history[-1]
                bar.set_postfix(loss=f"{h['total']:.3f}", l_in=f"{h['mask_in']:.3f}", mask=f"{h['sparsity']:.2f}")
            if config.save_every and step % config.save_every == 0:
                checkpoint(step)
    if step > start or not checkpoint_path.exists():
        checkpoint(step)
    decoder.eval()
    return TrainResult(decoder, checkpoint_path, start, step, history)
