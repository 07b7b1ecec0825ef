"""The L-MAC mask decoder: encoder feature maps + target text → mask in [0, 1] on the linear STFT.

Shape of the computation (B = batch, F × T = linear spectrogram, F' × T' = finest feature map):

1. every feature map of the audio tower is projected to ``hidden`` channels (1×1 conv),
   modulated by the target's text embedding (FiLM: ``(1 + γ(t)) · h + β(t)``), resized to the
   finest map's grid and summed (a U-Net-like merge of scales);
2. two 3×3 conv blocks, each FiLM-conditioned, give ``coarse_channels`` maps on F' × T';
3. a learned F' → F projection maps the encoder's (usually mel-spaced) frequency rows onto the
   linear bins — initialised to linear interpolation, it learns the mel warping — and time is
   interpolated linearly to T;
4. a small full-resolution head reads those maps together with the log magnitude, so the mask
   can follow individual harmonics the coarse maps cannot resolve; a sigmoid gives [0, 1].

The full-resolution part is deliberately tiny (one 3×3 conv with ``head_channels``), because it
dominates rendering time on CPU.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import EvidenceError
from .stft import STFTParams

_LOG_EPS = 1e-5  # floor of the log magnitude fed to the head (about −100 dB re 1.0)
_LOG_SPAN = 9.2  # ln(1e4): the head sees the top 80 dB of each example's spectrogram


@dataclass(frozen=True)
class DecoderConfig:
    """Everything needed to rebuild a decoder; stored in its checkpoint."""

    feature_channels: tuple[int, ...]  # C of each feature map the encoder returns
    feature_freq: int  # F' rows of the finest feature map
    n_freq: int  # F bins of the linear spectrogram, n_fft // 2 + 1
    text_dim: int  # dimension of the text embedding the mask is conditioned on
    hidden: int = 32
    coarse_channels: int = 4
    head_channels: int = 8

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["feature_channels"] = list(self.feature_channels)
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> "DecoderConfig":
        d = dict(d)
        d["feature_channels"] = tuple(int(c) for c in d["feature_channels"])
        return cls(**d)


class FiLM(nn.Module):
    """Feature-wise affine modulation of (B, C, H, W) maps by a (B, d) conditioning vector."""

    def __init__(self, cond_dim: int, channels: int) -> None:
        super().__init__()
        self.linear = nn.Linear(cond_dim, 2 * channels)
        # Start as the identity so an untrained decoder is not dominated by random modulation.
        nn.init.zeros_(self.linear.weight)
        nn.init.zeros_(self.linear.bias)

    def forward(self, x: torch.Tensor, cond: torch.Tensor) -> torch.Tensor:
        gamma, beta = self.linear(cond).chunk(2, dim=-1)
        return x * (1.0 + gamma[:, :, None, None]) + beta[:, :, None, None]


def _interpolation_matrix(n_in: int, n_out: int) -> torch.Tensor:
    """(n_out, n_in) matrix performing 1-D linear interpolation (align_corners=False)."""
    eye = torch.eye(n_in).unsqueeze(1)  # (n_in, 1, n_in): each row a unit impulse
    out = F.interpolate(eye, size=n_out, mode="linear", align_corners=False)  # (n_in, 1, n_out)
    return out[:, 0, :].T.contiguous()


def log_magnitude_channel(magnitude: torch.Tensor) -> torch.Tensor:
    """(B, F, T) magnitude → (B, 1, F, T) log magnitude scaled to [0, 1] per example (top 80 dB)."""
    logmag = torch.log(magnitude + _LOG_EPS)
    peak = logmag.flatten(1).amax(dim=1)[:, None, None]
    return ((logmag - peak) / _LOG_SPAN).clamp(min=-1.0).add(1.0).unsqueeze(1)


class MaskDecoder(nn.Module):
    """Predicts an L-MAC mask in [0, 1] of shape (B, F, T) on the linear spectrogram grid."""

    def __init__(self, config: DecoderConfig) -> None:
        super().__init__()
        self.config = config
        h, d = config.hidden, config.text_dim
        self.proj = nn.ModuleList(nn.Conv2d(c, h, kernel_size=1) for c in config.feature_channels)
        self.proj_film = nn.ModuleList(FiLM(d, h) for _ in config.feature_channels)
        self.conv1 = nn.Conv2d(h, h, kernel_size=3, padding=1)
        self.film1 = FiLM(d, h)
        self.conv2 = nn.Conv2d(h, h, kernel_size=3, padding=1)
        self.film2 = FiLM(d, h)
        self.to_coarse = nn.Conv2d(h, config.coarse_channels, kernel_size=1)
        self.freq_proj = nn.Parameter(_interpolation_matrix(config.feature_freq, config.n_freq))
        self.head1 = nn.Conv2d(config.coarse_channels + 1, config.head_channels, kernel_size=3, padding=1)
        self.head2 = nn.Conv2d(config.head_channels, 1, kernel_size=1)

    def forward(
        self, feature_maps: Sequence[torch.Tensor], text_embedding: torch.Tensor, magnitude: torch.Tensor
    ) -> torch.Tensor:
        """Feature maps [(B, C_i, F_i, T_i)], text (B, d), magnitude (B, F, T) → mask (B, F, T)."""
        cfg = self.config
        if len(feature_maps) != len(cfg.feature_channels):
            raise EvidenceError(
                f"decoder expects {len(cfg.feature_channels)} feature maps, got {len(feature_maps)}: "
                "the encoder changed; retrain the decoder (earmark evidence train)"
            )
        if magnitude.shape[1] != cfg.n_freq:
            raise EvidenceError(f"decoder expects {cfg.n_freq} frequency bins, got {magnitude.shape[1]}")
        grid = (max(f.shape[-2] for f in feature_maps), max(f.shape[-1] for f in feature_maps))
        if grid[0] != cfg.feature_freq:
            raise EvidenceError(f"decoder expects feature maps with {cfg.feature_freq} rows, got {grid[0]}")
        x = None
        for fmap, proj, film in zip(feature_maps, self.proj, self.proj_film):
            y = film(proj(fmap), text_embedding)
            if tuple(y.shape[-2:]) != grid:
                y = F.interpolate(y, size=grid, mode="bilinear", align_corners=False)
            x = y if x is None else x + y
        assert x is not None
        x = F.relu(x)
        x = F.relu(self.film1(self.conv1(x), text_embedding))
        x = F.relu(self.film2(self.conv2(x), text_embedding))
        coarse = self.to_coarse(x)  # (B, k, F', T')
        # F' → F with the learned projection, then T' → T by linear interpolation.
        coarse = torch.einsum("bkjt,fj->bkft", coarse, self.freq_proj)
        n_frames = magnitude.shape[-1]
        if coarse.shape[-1] != n_frames:
            coarse = F.interpolate(coarse, size=(cfg.n_freq, n_frames), mode="bilinear", align_corners=False)
        z = torch.cat([coarse, log_magnitude_channel(magnitude)], dim=1)
        logits = self.head2(F.relu(self.head1(z)))
        return torch.sigmoid(logits[:, 0])

    @classmethod
    def for_encoder(cls, encoder: Any, hidden: int = 32, window_samples: int | None = None) -> "MaskDecoder":
        """Build a decoder sized for ``encoder`` by probing one window through its audio tower."""
        params = STFTParams.from_mapping(encoder.stft_params())
        n = window_samples or getattr(encoder, "window_samples", None)
        if not n:
            raise EvidenceError("encoder has no window_samples; pass window_samples= (samples per window)")
        text = encoder.text_tensor(["probe"])
        gen = torch.Generator().manual_seed(0)
        probe = torch.rand(1, params.n_freq, params.n_frames(int(n)), generator=gen).to(text.device) * 1e-2
        with torch.no_grad():
            _, fmaps = encoder.embed_from_magnitude(probe)
        if not fmaps:
            raise EvidenceError("encoder returned no feature maps from embed_from_magnitude; L-MAC needs at least one")
        config = DecoderConfig(
            feature_channels=tuple(int(f.shape[1]) for f in fmaps),
            feature_freq=max(int(f.shape[-2]) for f in fmaps),
            n_freq=params.n_freq,
            text_dim=int(text.shape[-1]),
            hidden=hidden,
        )
        return cls(config).to(text.device)
