"""Training the aiSFX CNN's last block with the heads (``TrainConfig.block4_scale``).

The heads alone train on cached pooled CNN features; tuning block 4 as well needs its input,
block 3's output maps (256 × 12 × 12 a window), which are cached instead (float16, ~0.57 GB for
the corpus) so that no window goes through blocks 1–3 more than once. Block 4's weights are
W₀ + scale·Δ with Δ trainable from zero: the pretrained weights move with a ``scale`` times
smaller step than the heads, and weight decay on Δ pulls them back towards aiSFX's. Batch norm
keeps aiSFX's running statistics. For shipping, Δ is folded into the CNN (:meth:`folded`), so
the checkpoint and its loading code are those of a frozen-CNN model.
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..encoders.embedded_model import EmbeddedClap, ModelConfig
from .features import FeatureExtractor

__all__ = ["Block3Maps", "Block4TunedClap"]

_INFERENCE_CHUNK = 256  # rows a forward pass without gradients: bounds block 4's activations


class Block3Maps(FeatureExtractor):
    """Windows → block 3's output maps, flattened (B, C·F·T) float16, in (C, F, T) order."""

    def rows(self, pooled: torch.Tensor, maps: list[torch.Tensor]) -> np.ndarray:
        return maps[2].reshape(len(pooled), -1).to(torch.float16).cpu().numpy()

    def empty(self) -> np.ndarray:
        return np.zeros((0, 0), np.float16)


class Block4TunedClap(EmbeddedClap):
    """An :class:`EmbeddedClap` whose ``project_audio_features`` takes block 3's maps and runs
    block 4 with weights W₀ + scale·Δ before the audio head."""

    def __init__(self, cfg: ModelConfig, scale: float) -> None:
        super().__init__(cfg)
        if scale <= 0:
            raise ValueError(f"block4_scale must be > 0 to tune block 4, got {scale}")
        self.scale = scale
        block = self.audio.cnn.conv_block4
        self.d1 = nn.Parameter(torch.zeros_like(block.conv1.weight))
        self.d2 = nn.Parameter(torch.zeros_like(block.conv2.weight))

    def pooled(self, flat_maps: torch.Tensor) -> torch.Tensor:
        """(B, C·F·T) block-3 maps → (B, 512) pooled block-4 features, as ``SfxCNN`` pools them."""
        block = self.audio.cnn.conv_block4
        c = block.conv1.in_channels
        n_freq = self.cfg.audio.n_mels // 8  # three 2×2 max pools before block 4
        x = flat_maps.float().view(len(flat_maps), c, n_freq, -1).transpose(2, 3)  # (B, C, T, F), as the CNN runs
        # bfloat16 while training (half the time on a CPU with native bfloat16); float32 when
        # measuring, as the shipped (folded) model runs.
        with torch.autocast(x.device.type, dtype=torch.bfloat16, enabled=torch.is_grad_enabled()):
            h = F.relu(block.bn1(F.conv2d(x, block.conv1.weight + self.scale * self.d1, padding=1)))
            h = F.relu(block.bn2(F.conv2d(h, block.conv2.weight + self.scale * self.d2, padding=1)))
        return h.float().mean(dim=3).amax(dim=2)  # mean over frequency, max over time

    def project_audio_features(self, cnn_features: torch.Tensor) -> torch.Tensor:
        """(B, C·F·T) cached block-3 maps → (B, dim) unit-norm."""
        if torch.is_grad_enabled():
            return F.normalize(self.audio.proj(self.pooled(cnn_features)), dim=-1)
        return torch.cat([F.normalize(self.audio.proj(self.pooled(cnn_features[i : i + _INFERENCE_CHUNK])), dim=-1)
                          for i in range(0, len(cnn_features), _INFERENCE_CHUNK)])

    def block4_change(self) -> float:
        """‖scale·Δ‖ / ‖W₀‖ of block 4's second convolution: how far training moved it."""
        w = self.audio.cnn.conv_block4.conv2.weight
        return float(self.scale * self.d2.detach().norm() / w.detach().norm())

    @torch.no_grad()
    def folded(self) -> EmbeddedClap:
        """A plain :class:`EmbeddedClap` with W₀ + scale·Δ written into block 4 (what ships)."""
        plain = EmbeddedClap(self.cfg)
        state = {k: v for k, v in self.state_dict().items() if k not in ("d1", "d2")}
        plain.load_state_dict(state, strict=True)
        block = plain.audio.cnn.conv_block4
        block.conv1.weight += self.scale * self.d1
        block.conv2.weight += self.scale * self.d2
        return plain.eval()
