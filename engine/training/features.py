"""Frozen-CNN features of the training corpus, computed once and cached.

The audio CNN (aisfx weights) is frozen during training, so each training window is pushed
through it once: the 512-d pooled feature is stored under ``cache_dir/features``. Training then
only runs the small projection heads, which is fast on a CPU.

Windows per sound (deterministic): files no longer than one window give one window (padded);
longer files give up to ``max_windows`` windows, the loudest of a half-window grid. Augmented
windows are added for training: a pitch/speed shift (±2 semitones) of one window per sound
(probability ``pitch_prob``) and mixtures of two sounds with different labels at a random
level difference, captioned with both labels. Acoustic views (``acoustic_views`` per sound)
re-record a random loud window through a random channel: band limits (a high-pass and/or a
low-pass, as small speakers, phones and old codecs have), a synthetic room (exponentially
decaying noise as the impulse response) and background noise, so that the model does not learn
one game's recording chain as part of what a sound is.
"""
from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.signal
import soundfile as sf
import soxr
import torch
from tqdm import tqdm

from ..audio import open_sound
from ..encoders.embedded_model import AudioTower
from .captions import mix_label
from .corpus import PROCEDURAL, CorpusItem


@dataclass
class FeatureSet:
    """Cached CNN features with what each row is."""

    features: np.ndarray  # (N, 512) float32 CNN features
    item: np.ndarray  # (N,) int index into the corpus items (first sound for mixtures)
    partner: np.ndarray  # (N,) int index of the second sound of a mixture, -1 otherwise
    kind: np.ndarray  # (N,) int 0 = plain window, 1 = pitch-shifted, 2 = mixture, 3 = acoustic view
    labels: list[str]  # (N,) label of each row (mixtures: "A and B")


def load_mono(path: str, sample_rate: int) -> np.ndarray:
    """Decode ``path`` to mono float32 at ``sample_rate`` Hz (soundfile + soxr, the whole file
    resampled at once). Opened as the product opens files, so Ogg Vorbis wrapped in RIFF/WAVE
    (some lmms-common samples) decodes too."""
    with open_sound(path) as f:
        data, sr = f.read(dtype="float32", always_2d=True), f.samplerate
    mono = data.mean(axis=1)
    if sr != sample_rate:
        mono = soxr.resample(mono, sr, sample_rate, quality="HQ").astype(np.float32)
    return np.ascontiguousarray(mono, dtype=np.float32)


def half_window_grid(wave: np.ndarray, n: int, include_end: bool) -> tuple[np.ndarray, np.ndarray]:
    """Starts of ``n``-sample windows every n/2 samples over ``wave`` (longer than n), plus the
    window that ends at the last sample when ``include_end``, and each window's mean power."""
    starts = list(range(0, len(wave) - n + 1, n // 2))
    if include_end and starts[-1] != len(wave) - n:
        starts.append(len(wave) - n)
    energy = np.array([float(np.mean(wave[s : s + n] ** 2)) for s in starts])
    return np.asarray(starts), energy


def select_windows(wave: np.ndarray, n: int, max_windows: int) -> list[np.ndarray]:
    """Up to ``max_windows`` windows of ``n`` samples: the loudest on a half-window grid, in time order."""
    if len(wave) <= n:
        return [np.pad(wave, (0, n - len(wave)))]
    starts, energy = half_window_grid(wave, n, include_end=True)
    order = sorted(range(len(starts)), key=lambda i: -energy[i])[:max_windows]
    return [wave[starts[i] : starts[i] + n] for i in sorted(order)]


def shift_pitch(window: np.ndarray, semitones: float, n: int) -> np.ndarray:
    """Resample so pitch and speed change together by ``semitones``; crop/pad back to ``n`` samples."""
    factor = 2.0 ** (semitones / 12.0)
    out = soxr.resample(window, 44100 * factor, 44100, quality="HQ").astype(np.float32)
    return out[:n] if len(out) >= n else np.pad(out, (0, n - len(out)))


ACOUSTIC_VERSION = "1"  # bump when acoustic_view changes, so cached views are recomputed
VIEW_KIND = 3  # FeatureSet.kind of an acoustic-view row


def acoustic_view(wave: np.ndarray, n: int, sample_rate: int, rng: np.random.Generator) -> np.ndarray:
    """One ``n``-sample window of ``wave`` heard through a random channel (see module docstring)."""
    if len(wave) <= n:  # short sound: a random offset inside the window
        out = np.zeros(n, np.float32)
        start = int(rng.integers(0, n - len(wave) + 1))
        out[start : start + len(wave)] = wave
    else:  # long sound: a random window among the louder half of the half-window grid
        hop = n // 2
        starts, energy = half_window_grid(wave, n, include_end=False)
        loud = starts[energy >= np.median(energy)]
        s0 = int(rng.choice(loud)) + int(rng.integers(-hop // 2, hop // 2 + 1))
        s0 = int(np.clip(s0, 0, len(wave) - n))
        out = wave[s0 : s0 + n].astype(np.float32).copy()
    nyq = sample_rate / 2
    if rng.random() < 0.5:
        sos = scipy.signal.butter(2, rng.uniform(80.0, 1000.0) / nyq, "highpass", output="sos")
        out = scipy.signal.sosfilt(sos, out)
    if rng.random() < 0.5:
        sos = scipy.signal.butter(4, rng.uniform(2500.0, 12000.0) / nyq, "lowpass", output="sos")
        out = scipy.signal.sosfilt(sos, out)
    if rng.random() < 0.4:  # room: RT60 0.2–1.2 s, wet share 10–50 %
        rt60 = rng.uniform(0.2, 1.2)
        t = np.arange(int(rt60 * sample_rate)) / sample_rate
        ir = rng.standard_normal(len(t)) * 10.0 ** (-3.0 * t / rt60)
        wet = scipy.signal.fftconvolve(out, ir / np.sqrt(np.sum(ir**2)))[:n]
        mix = rng.uniform(0.1, 0.5)
        out = (1 - mix) * out + mix * wet * (np.std(out) / (np.std(wet) + 1e-9))
    if rng.random() < 0.4:  # background: pink-ish noise at 10–30 dB SNR
        spec = np.fft.rfft(rng.standard_normal(n))
        spec /= np.sqrt(np.maximum(np.arange(len(spec)), 1.0))
        noise = np.fft.irfft(spec, n)
        snr = rng.uniform(10.0, 30.0)
        out = out + noise * (np.std(out) / (np.std(noise) + 1e-9)) * 10.0 ** (-snr / 20.0)
    peak = np.abs(out).max()
    return (out / peak * 0.9 if peak > 0 else out).astype(np.float32)


class FeatureExtractor:
    """Batches windows through the frozen front end + CNN."""

    def __init__(self, tower: AudioTower, batch_size: int = 32) -> None:
        self.tower = tower.eval()
        self.batch_size = batch_size

    @torch.no_grad()
    def __call__(self, windows: np.ndarray) -> np.ndarray:
        out = []
        device = next(self.tower.parameters()).device
        for i in range(0, len(windows), self.batch_size):
            x = torch.from_numpy(windows[i : i + self.batch_size]).to(device)
            out.append(self.rows(*self.tower.cnn_features(self.tower.frontend.stft_magnitude(x))))
        return np.concatenate(out) if out else self.empty()

    def rows(self, pooled: torch.Tensor, maps: list[torch.Tensor]) -> np.ndarray:
        """What is cached of one batch: the pooled CNN feature, (B, 512) float32."""
        return pooled.float().cpu().numpy()

    def empty(self) -> np.ndarray:
        """What no windows give."""
        return np.zeros((0, self.tower.cnn.out_dim), np.float32)


def _key(*parts: str) -> str:
    return hashlib.sha1("|".join(parts).encode()).hexdigest()[:20]


def compute_features(
    items: list[CorpusItem],
    tower: AudioTower,
    cache_dir: str | Path,
    seed: int = 0,
    max_windows: int = 3,
    pitch_prob: float = 0.35,
    n_mixes: int = 1500,
    acoustic_views: int = 0,
    progress: bool = True,
    extract: FeatureExtractor | None = None,
) -> FeatureSet:
    """CNN features for every window of ``items`` plus augmentations; cached per sound.

    ``extract`` turns a (B, samples) batch of windows into (B, F) rows of its ``empty()``'s dtype
    (default: the pooled CNN feature, float32, :class:`FeatureExtractor`); another extractor
    needs a ``cache_dir`` of its own, because the cache files are keyed by sound and front-end
    settings, not by extractor.
    """
    cfg = tower.frontend.cfg
    n = int(round(cfg.window_seconds * cfg.sample_rate))
    cache = Path(cache_dir) / "features"
    cache.mkdir(parents=True, exist_ok=True)
    extract = extract or FeatureExtractor(tower)
    rng = np.random.default_rng(seed)
    cfg_tag = repr(cfg.to_dict())

    feats: list[np.ndarray] = []
    item_idx: list[int] = []
    partner: list[int] = []
    kind: list[int] = []
    labels: list[str] = []
    # Sounds that decoded; mixtures draw from these. Procedural sounds stay out: they come last in
    # the corpus, so leaving them out keeps every other sound's mixtures as drawn without them.
    mixable: list[int] = []
    for idx, it in enumerate(tqdm(items, desc="features", unit="sound", disable=not progress)):
        # The pitch augmentation of a sound depends on its key (path inside the corpus cache) and
        # the seed only: adding packages to the corpus does not change the augmentations of others,
        # and a cache in another folder draws the same ones.
        h = int(_key(it.draw_key, str(seed), "pitch-draw"), 16)
        semitones = (-2.0, -1.0, 1.0, 2.0)[h % 4] if (h >> 8) % 10_000 < pitch_prob * 10_000 else 0.0
        if it.rule == "music":  # a pitch-shifted song is still a song; skip the long decode
            semitones = 0.0
        plain_path = cache / f"{_key(it.path, cfg_tag, str(max_windows), 'plain')}.npy"
        pitch_path = cache / f"{_key(it.path, cfg_tag, f'{semitones}', 'pitch')}.npy"
        try:
            wave = wins = None
            if plain_path.exists():
                f_plain = np.load(plain_path)
            else:
                wave = load_mono(it.path, cfg.sample_rate)
                wins = select_windows(wave, n, max_windows)
                f_plain = extract(np.stack(wins).astype(np.float32))
                np.save(plain_path, f_plain)
            f_pitch = np.zeros((0, f_plain.shape[1]), np.float32)
            if semitones:
                if pitch_path.exists():
                    f_pitch = np.load(pitch_path)
                else:
                    if wins is None:
                        wins = select_windows(load_mono(it.path, cfg.sample_rate), n, max_windows)
                    f_pitch = extract(shift_pitch(wins[0], semitones, n)[None])
                    np.save(pitch_path, f_pitch)
            f_views = np.zeros((0, f_plain.shape[1]), np.float32)
            if acoustic_views and it.rule != "music":
                views_path = cache / f"{_key(it.path, cfg_tag, str(seed), str(acoustic_views), ACOUSTIC_VERSION, 'acoustic')}.npy"
                if views_path.exists():
                    f_views = np.load(views_path)
                else:
                    if wave is None:
                        wave = load_mono(it.path, cfg.sample_rate)
                    view_rng = np.random.default_rng(int(_key(it.draw_key, str(seed), "acoustic"), 16))
                    views = [acoustic_view(wave, n, cfg.sample_rate, view_rng) for _ in range(acoustic_views)]
                    f_views = extract(np.stack(views))
                    np.save(views_path, f_views)
        except (RuntimeError, sf.LibsndfileError, ValueError) as exc:  # undecodable file: skip it, say so
            tqdm.write(f"skip {it.path}: {exc}")
            continue
        for row in f_plain:
            feats.append(row); item_idx.append(idx); partner.append(-1); kind.append(0); labels.append(it.label)
        for row in f_pitch:
            feats.append(row); item_idx.append(idx); partner.append(-1); kind.append(1); labels.append(it.label)
        for row in f_views:
            feats.append(row); item_idx.append(idx); partner.append(-1); kind.append(VIEW_KIND); labels.append(it.label)
        if it.package != PROCEDURAL:
            mixable.append(idx)

    # Mixtures: pairs of sounds with different labels, at a level difference of -6..6 dB.
    # The caller keeps a mixture in a split only when both sounds belong to it.
    mix_pairs: list[tuple[int, int, float]] = []
    tries = 0
    while len(mix_pairs) < n_mixes and tries < 20 * n_mixes and len(mixable) > 1:
        tries += 1
        a, b = rng.choice(mixable, size=2, replace=False)
        # Music tracks are long to decode and rarely useful in a mixture: leave them out.
        if items[a].label != items[b].label and items[a].rule != "music" and items[b].rule != "music":
            mix_pairs.append((int(a), int(b), float(rng.uniform(-6.0, 6.0))))
    # Each mixture is cached on its own (paths + level), so a changed corpus reuses what it can.
    mix_dir = cache / "mix"
    mix_dir.mkdir(exist_ok=True)
    mix_files = [mix_dir / f"{_key(items[a].path, items[b].path, f'{db:.4f}', cfg_tag)}.npy" for a, b, db in mix_pairs]
    todo = [i for i, f in enumerate(mix_files) if not f.exists()]
    for s in tqdm(range(0, len(todo), 32), desc="mixtures", unit="batch", disable=not progress):
        batch, dests = [], []
        for i in todo[s : s + 32]:
            a, b, db = mix_pairs[i]
            wa = select_windows(load_mono(items[a].path, cfg.sample_rate), n, 1)[0]
            wb = select_windows(load_mono(items[b].path, cfg.sample_rate), n, 1)[0]
            ra = np.sqrt(np.mean(wa**2)) + 1e-6
            rb = np.sqrt(np.mean(wb**2)) + 1e-6
            mixed = wa / ra + (wb / rb) * (10.0 ** (db / 20.0))
            batch.append((mixed / (np.abs(mixed).max() + 1e-6) * 0.9).astype(np.float32))
            dests.append(mix_files[i])
        for dest, row in zip(dests, extract(np.stack(batch))):
            np.save(dest, row)
    mf = [np.load(f) for f in mix_files]
    for (a, b, _), row in zip(mix_pairs, mf):
        feats.append(row); item_idx.append(a); partner.append(b); kind.append(2)
        labels.append(mix_label(items[a].label, items[b].label))

    return FeatureSet(
        features=np.stack(feats).astype(extract.empty().dtype, copy=False),  # the extractor's dtype (maps: float16)
        item=np.asarray(item_idx, dtype=np.int64),
        partner=np.asarray(partner, dtype=np.int64),
        kind=np.asarray(kind, dtype=np.int64),
        labels=labels,
    )
