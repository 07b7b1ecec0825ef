"""Listenable evidence for one hit: mask-in WAV, mask-out WAV and a spectrogram picture.

The hit's audio is analysed with the encoder's STFT; frames are cut into chunks of one encoder
window (the last chunk is aligned to the end, overlaps averaged) so the decoder sees what the
encoder saw when indexing. Mask-in audio = ISTFT(M · |X|, ∠X), mask-out = ISTFT((1 − M) · |X|, ∠X).
Without a decoder the mask is a gradient saliency map, labelled as such in the result, the file
names and the picture — never silently.
"""
from __future__ import annotations

import weakref
from collections import OrderedDict
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
import soundfile as sf
import torch

from .decoder import MaskDecoder
from .errors import EvidenceError
from .precision import mask_autocast, resolve_precision
from .saliency import SALIENCY_LABEL, SALIENCY_METHOD, gradient_saliency
from .stft import STFTParams, istft, magnitude_phase, stft

LMAC_METHOD = "lmac"
LMAC_LABEL = "L-MAC evidence"
_DB_RANGE = 80.0  # dB of the spectrogram shown below its peak
_MAX_PNG_WIDTH = 1200  # px of spectrogram; longer hits are squeezed in time (PNG encoding is ~1/5 of a render)
_MIN_PNG_WIDTH = 480  # px; short hits are stretched
_PX_PER_FRAME = 6  # px per STFT frame between the two
_PNG_HEIGHT = 256  # px of spectrogram, log-spaced frequency rows
_OVERLAY_RGB = np.array([1.0, 0.55, 0.0])  # orange: masked-in region
_OVERLAY_ALPHA = 0.6


@dataclass(frozen=True)
class EvidenceMask:
    """A mask over the hit's linear STFT, with what is needed to resynthesise it."""

    mask: np.ndarray  # (F, T) float32 in [0, 1]
    magnitude: np.ndarray  # (F, T) float32 linear magnitude
    phase: np.ndarray  # (F, T) float32 radians
    method: str  # "lmac" | "gradient-saliency"
    label: str  # human-readable method label for pictures and pages
    params: STFTParams
    sample_rate: int  # Hz of the analysed audio (the encoder's rate)
    n_samples: int
    similarity_original: float  # cos(f(X), t), mean over chunks
    similarity_in: float | None  # cos(f(M ⊙ X), t); None when not checked
    similarity_out: float | None  # cos(f((1 − M) ⊙ X), t); None when not checked
    precision: str = "fp32"  # arithmetic of the mask pass: "fp32" or "bf16" (engine/evidence/precision.py)


@dataclass(frozen=True)
class Evidence:
    """Files rendered for one hit and the numbers shown next to them."""

    method: str
    label: str
    target_text: str
    sample_rate: int
    duration_s: float
    mask_in_wav: Path
    mask_out_wav: Path
    png: Path
    mask_mean: float  # mean mask value in [0, 1]
    similarity_original: float  # cosine of the hit to the target text, mean over chunks
    similarity_in: float | None  # same for the masked-in spectrogram (None: not checked)
    similarity_out: float | None  # same for the masked-out spectrogram
    precision: str = "fp32"  # arithmetic of the mask pass

    def to_dict(self) -> dict[str, Any]:
        return {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(self).items()}


def _chunk_starts(n_frames: int, chunk: int) -> list[int]:
    if n_frames <= chunk:
        return [0]
    starts = list(range(0, n_frames - chunk + 1, chunk))
    if starts[-1] + chunk < n_frames:
        starts.append(n_frames - chunk)  # last chunk aligned to the end
    return starts


_TEXT_CACHE: "weakref.WeakKeyDictionary[Any, OrderedDict[str, torch.Tensor]]" = weakref.WeakKeyDictionary()
_TEXT_CACHE_SIZE = 64


def _target_embedding(encoder: Any, text: str) -> torch.Tensor:
    """(1, D) text embedding of a target, cached per encoder: the hits of one query share it
    (the embedded encoder's text tower costs ~20 ms a call on CPU)."""
    per_encoder = _TEXT_CACHE.setdefault(encoder, OrderedDict())
    if text in per_encoder:
        per_encoder.move_to_end(text)
        return per_encoder[text]
    emb = encoder.text_tensor([text])
    per_encoder[text] = emb
    if len(per_encoder) > _TEXT_CACHE_SIZE:
        per_encoder.popitem(last=False)
    return emb


def _prepare(waveform: np.ndarray, sample_rate: int, encoder: Any) -> np.ndarray:
    x = np.asarray(waveform, dtype=np.float32)
    if x.ndim != 1:
        raise EvidenceError(f"waveform must be mono (N,), got shape {x.shape}; downmix first")
    if x.size == 0 or not np.all(np.isfinite(x)):
        raise EvidenceError("waveform is empty or contains NaN/Inf")
    target_rate = int(encoder.sample_rate)
    if sample_rate != target_rate:
        import soxr

        x = soxr.resample(x, sample_rate, target_rate).astype(np.float32)
    return x


@torch.no_grad()
def compute_mask(
    encoder: Any,
    waveform: np.ndarray,
    sample_rate: int,
    target_text: str,
    decoder: MaskDecoder | None = None,
    check: bool = True,
    precision: str = "auto",
) -> EvidenceMask:
    """Mask for ``target_text`` over a mono hit of any length (resampled to the encoder's rate).

    ``check`` also embeds the masked-in and masked-out spectrograms to report their cosine to
    the target (two more encoder passes: about as costly as the mask itself). ``precision`` of
    the L-MAC mask pass: "auto" (bf16 on a CPU with native bfloat16, else fp32), "fp32", "bf16";
    the result records which ran.
    """
    params = STFTParams.from_mapping(encoder.stft_params())
    x = _prepare(waveform, sample_rate, encoder)
    text = _target_embedding(encoder, target_text)
    device = text.device
    magnitude, phase = magnitude_phase(stft(torch.from_numpy(x).to(device), params))
    magnitude, phase = magnitude[0], phase[0]
    n_freq, n_frames = magnitude.shape
    chunk = params.n_frames(int(encoder.window_samples))
    starts = _chunk_starts(n_frames, chunk)
    padded = magnitude
    if n_frames < chunk:  # shorter than one window: zero-pad like the indexer pads short files
        padded = torch.nn.functional.pad(magnitude, (0, chunk - n_frames))
    chunks = torch.stack([padded[:, s : s + chunk] for s in starts])  # (C, F, chunk)
    texts = text.expand(len(starts), -1)

    prec = resolve_precision(precision, device) if decoder is not None else "fp32"
    with mask_autocast(prec, device):
        emb, fmaps = encoder.embed_from_magnitude(chunks)
        sim_original = float((emb.float() @ text[0]).mean())
        if decoder is not None:
            # A checkpoint loaded on CPU follows the encoder to its device; NHWC convolutions are faster.
            decoder.to(device, memory_format=torch.channels_last).eval()
            masks = decoder(fmaps, texts, chunks).float().clamp(0.0, 1.0)
            method, label = LMAC_METHOD, LMAC_LABEL
    if decoder is None:
        masks = gradient_saliency(encoder, chunks, texts)
        method, label = SALIENCY_METHOD, SALIENCY_LABEL

    # Stitch: average where the end-aligned last chunk overlaps its neighbour.
    total = torch.zeros(n_freq, max(n_frames, chunk), device=device)
    count = torch.zeros(1, max(n_frames, chunk), device=device)
    for s, m in zip(starts, masks):
        total[:, s : s + chunk] += m
        count[:, s : s + chunk] += 1
    mask = (total / count)[:, :n_frames]

    sim_in = sim_out = None
    if check:  # in the mask pass's precision, so the three cosines are comparable
        with mask_autocast(prec, device):
            emb_io, _ = encoder.embed_from_magnitude(torch.cat([masks * chunks, (1 - masks) * chunks]),
                                                     level_reference=chunks.repeat(2, 1, 1))
        sim_in, sim_out = (float(v) for v in (emb_io.float() @ text[0]).reshape(2, len(starts)).mean(dim=1))
    return EvidenceMask(
        mask=mask.float().cpu().numpy(),
        magnitude=magnitude.float().cpu().numpy(),
        phase=phase.float().cpu().numpy(),
        method=method,
        label=label,
        params=params,
        sample_rate=int(encoder.sample_rate),
        n_samples=int(x.size),
        similarity_original=sim_original,
        similarity_in=sim_in,
        similarity_out=sim_out,
        precision=prec,
    )


def resynthesise(ev: EvidenceMask) -> tuple[np.ndarray, np.ndarray]:
    """(mask-in, mask-out) audio, each (n_samples,) float32, with the original phase."""
    mag = torch.from_numpy(ev.magnitude)[None]
    phase = torch.from_numpy(ev.phase)[None]
    m = torch.from_numpy(ev.mask)[None]
    both = istft(torch.cat([m * mag, (1 - m) * mag]), torch.cat([phase, phase]), ev.params, ev.n_samples)
    return both[0].numpy(), both[1].numpy()


def _frequency_span(n_bins: int, sample_rate: int) -> tuple[float, float]:
    """(lowest, highest) Hz the picture shows: 20 Hz or the first bin above DC, up to Nyquist."""
    nyquist = sample_rate / 2.0
    return max(20.0, nyquist / (n_bins - 1)), nyquist


def _log_frequency_rows(n_bins: int, sample_rate: int, rows: int) -> tuple[np.ndarray, np.ndarray, float]:
    """For each picture row (top = Nyquist), the two STFT bins it lies between and the blend weight."""
    lowest, nyquist = _frequency_span(n_bins, sample_rate)
    freqs = np.geomspace(nyquist, lowest, rows)  # top row first
    pos = freqs / nyquist * (n_bins - 1)
    lo = np.clip(np.floor(pos).astype(int), 0, n_bins - 1)
    return lo, np.clip(lo + 1, 0, n_bins - 1), pos - lo


def spectrogram_image(ev: EvidenceMask, title: str, subtitle: str = "") -> "Image.Image":
    """RGB picture: grey log spectrogram (top 80 dB) on a log-frequency axis, the masked-in
    region tinted orange, low Hz at the bottom, with frequency ticks.

    The linear STFT has ~1,000 bins over a few hundred frames; shown raw, it is a tall sliver in
    which everything below 1 kHz is a few rows. Rows are spaced logarithmically from 20 Hz (or the
    first bin) to Nyquist, as a listener hears them, and time is stretched to a readable width.
    """
    from PIL import Image, ImageDraw

    n_bins, n_frames = ev.magnitude.shape
    lo, hi, frac = _log_frequency_rows(n_bins, ev.sample_rate, _PNG_HEIGHT)

    def rows(x: np.ndarray) -> np.ndarray:
        return (1.0 - frac)[:, None] * x[lo] + frac[:, None] * x[hi]

    db = 20.0 * np.log10(ev.magnitude + 1e-8)
    grey = np.clip((rows(db) - (db.max() - _DB_RANGE)) / _DB_RANGE, 0.0, 1.0)
    alpha = (_OVERLAY_ALPHA * rows(ev.mask))[..., None]
    rgb = (1.0 - alpha) * (0.9 * grey[..., None]) + alpha * _OVERLAY_RGB
    img = Image.fromarray((rgb * 255.0 + 0.5).astype(np.uint8), mode="RGB")
    width = int(np.clip(n_frames * _PX_PER_FRAME, _MIN_PNG_WIDTH, _MAX_PNG_WIDTH))
    img = img.resize((width, _PNG_HEIGHT), Image.Resampling.BILINEAR)
    header, axis = 30, 44  # two lines of Pillow's default bitmap font; Hz labels on the left
    canvas = Image.new("RGB", (axis + width, _PNG_HEIGHT + header), (255, 255, 255))
    canvas.paste(img, (axis, header))
    draw = ImageDraw.Draw(canvas)
    draw.text((4, 2), title, fill=(0, 0, 0))
    draw.text((4, 15), subtitle, fill=(60, 60, 60))
    lowest, nyquist = _frequency_span(n_bins, ev.sample_rate)
    for hz in (50, 100, 200, 500, 1000, 2000, 5000, 10000, 20000):
        if lowest <= hz <= nyquist:
            y = header + int(round((np.log(nyquist) - np.log(hz)) / (np.log(nyquist) - np.log(lowest)) * (_PNG_HEIGHT - 1)))
            draw.line((axis - 4, y, axis - 1, y), fill=(0, 0, 0))
            draw.text((2, max(header, y - 5)), f"{hz // 1000}k" if hz >= 1000 else str(hz), fill=(0, 0, 0))
    return canvas


def render_evidence(
    encoder: Any,
    waveform: np.ndarray,
    sample_rate: int,
    target_text: str,
    decoder: MaskDecoder | None,
    out_dir: str | Path,
    stem: str = "evidence",
    check: bool = True,
    precision: str = "auto",
    decoder_label: str | None = None,
) -> Evidence:
    """Write ``{stem}.{method}.in.wav``, ``.out.wav`` and ``.png`` under ``out_dir``; return what was written.

    WAVs are 16-bit PCM at the encoder's sample rate. ``decoder=None`` uses the labelled
    gradient-saliency fallback. ``check`` reports the masked-in/-out cosines and ``precision``
    sets the mask pass's arithmetic (see :func:`compute_mask`). ``decoder_label`` names the
    L-MAC masks in the picture and result when a decoder made them (which decoder it was).
    """
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    ev = compute_mask(encoder, waveform, sample_rate, target_text, decoder, check, precision)
    if decoder is not None and decoder_label:
        ev = replace(ev, label=decoder_label)
    base = out_dir / f"{stem}.{ev.method}"
    in_path, out_path, png_path = Path(f"{base}.in.wav"), Path(f"{base}.out.wav"), Path(f"{base}.png")
    mask_mean = float(ev.mask.mean())
    title = f"{ev.label}: '{target_text}'"
    subtitle = f"mask mean {mask_mean:.2f}  cos to target: original {ev.similarity_original:.2f}"
    if ev.similarity_in is not None and ev.similarity_out is not None:
        subtitle += f", masked-in {ev.similarity_in:.2f}, masked-out {ev.similarity_out:.2f}"
    # The picture is drawn and PNG-encoded (Pillow and NumPy release the GIL) while the two
    # ISTFTs run and the WAVs are written: ~20 ms of a ~0.15 s render.
    with ThreadPoolExecutor(max_workers=1) as pool:
        picture = pool.submit(lambda: spectrogram_image(ev, title, subtitle).save(png_path, format="PNG",
                                                                                 compress_level=1))
        mask_in, mask_out = resynthesise(ev)
        sf.write(in_path, np.clip(mask_in, -1.0, 1.0), ev.sample_rate, subtype="PCM_16")
        sf.write(out_path, np.clip(mask_out, -1.0, 1.0), ev.sample_rate, subtype="PCM_16")
        picture.result()
    return Evidence(
        method=ev.method,
        label=ev.label,
        target_text=target_text,
        sample_rate=ev.sample_rate,
        duration_s=ev.n_samples / ev.sample_rate,
        mask_in_wav=in_path,
        mask_out_wav=out_path,
        png=png_path,
        mask_mean=mask_mean,
        similarity_original=ev.similarity_original,
        similarity_in=ev.similarity_in,
        similarity_out=ev.similarity_out,
        precision=ev.precision,
    )

