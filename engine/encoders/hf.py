"""``hf:DIR_OR_HUB_ID``: CLAP models through transformers' ClapModel + ClapProcessor.

The argument is either a local directory written by ``save_pretrained`` (config.json, the
weights, the tokenizer files and the feature-extractor config) or a hub id such as
``laion/clap-htsat-unfused``. A hub id is resolved only from the local Hugging Face cache
(``local_files_only``); nothing is downloaded. Copy a model in with
``huggingface-cli download laion/clap-htsat-unfused`` on a connected machine, then carry the
cache (``$HF_HOME``, default ``~/.cache/huggingface``) over, or point ``hf:`` at a directory.

Windows are exactly the feature extractor's ``max_length_s`` long (10 s at 48 kHz for the LAION
releases), so its random crop never fires. Its "fusion" mode marks one clip of every batch as
"longer" at random when none is; earmark clears that flag, because a window is never longer than
the model's clip, and so the same window gives the same vector in any batch.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import Encoder, EncoderError, check_windows, fingerprint_of, l2_normalise

AUDIO_BATCH = 16  # windows per forward pass: bounds memory, does not change results
TEXT_BATCH = 64  # strings per forward pass
TEXT_MAX_TOKENS = 77  # LAION-CLAP's text length; fixed padding keeps text shapes batch-independent


def resolve_model_dir(arg: str) -> Path:
    """Turn ``DIR_OR_HUB_ID`` into a local directory, never touching the network.

    Raises:
        EncoderError: the directory does not exist, or the hub id is not in the local cache.
    """
    if not arg:
        raise EncoderError("hf encoder needs a directory or hub id: --encoder hf:DIR_OR_HUB_ID")
    path = Path(arg).expanduser()
    if path.is_dir():
        return path
    looks_like_path = arg.startswith(("/", ".", "~")) or arg.count("/") != 1 or path.exists()
    if looks_like_path:
        raise EncoderError(
            f"hf:{arg}: no such model directory. Give a directory written by transformers' "
            f"save_pretrained (config.json, model weights, tokenizer and preprocessor files), "
            f"or a hub id such as laion/clap-htsat-unfused that is in the local Hugging Face cache"
        )
    try:
        from huggingface_hub import snapshot_download
        from huggingface_hub.errors import LocalEntryNotFoundError
    except ImportError as exc:  # pragma: no cover - transformers always brings huggingface_hub
        raise EncoderError(f"hf encoder needs transformers: pip install 'earmark[hf]' ({exc})") from exc
    try:
        return Path(snapshot_download(repo_id=arg, local_files_only=True))
    except (LocalEntryNotFoundError, FileNotFoundError, ValueError) as exc:
        cache = os.environ.get("HF_HUB_CACHE") or os.environ.get("HF_HOME") or "~/.cache/huggingface"
        raise EncoderError(
            f"hf:{arg} is not in the local Hugging Face cache ({cache}) and earmark never downloads "
            f"models. On a connected machine run `huggingface-cli download {arg}` and copy the cache "
            f"here, or save the model to a directory and use --encoder hf:DIR"
        ) from exc


class HFClapEncoder(Encoder):
    """transformers ClapModel in eval mode behind the earmark Encoder interface."""

    def __init__(self, name: str, model: Any, processor: Any, device: str, fingerprint: str,
                 config: dict[str, Any]) -> None:
        import torch

        self._torch = torch
        self.name = name
        self.model = model.to(device).eval()
        self.processor = processor
        self.device = device
        self._fingerprint = fingerprint
        self._config = config
        fe = processor.feature_extractor
        self.sample_rate = int(fe.sampling_rate)
        self.window_seconds = float(fe.max_length_s)
        self.dim = int(model.config.projection_dim)

    @classmethod
    def load(cls, arg: str, device: str | None = None) -> "HFClapEncoder":
        """Load ``DIR_OR_HUB_ID`` onto ``device`` (None: CUDA when available, else CPU)."""
        try:
            import torch
            from transformers import ClapModel, ClapProcessor
        except ImportError as exc:
            raise EncoderError(f"hf encoder needs transformers: pip install 'earmark[hf]' ({exc})") from exc
        model_dir = resolve_model_dir(arg)
        missing = [] if (model_dir / "config.json").exists() else ["config.json"]
        # transformers 4 writes the feature extractor to preprocessor_config.json, 5 to processor_config.json
        if not any((model_dir / f).exists() for f in ("preprocessor_config.json", "processor_config.json")):
            missing.append("preprocessor_config.json")
        if missing:
            raise EncoderError(
                f"hf:{arg}: {', '.join(missing)} missing in {model_dir}; the directory must hold a "
                f"ClapModel and its ClapProcessor, both written with save_pretrained"
            )
        from transformers.utils import logging as hf_logging

        # transformers draws a "Loading weights" bar on stderr; it would garble CLI output.
        bar_was_on = hf_logging.is_progress_bar_enabled()
        hf_logging.disable_progress_bar()
        try:
            model = ClapModel.from_pretrained(model_dir, local_files_only=True)
            processor = ClapProcessor.from_pretrained(model_dir, local_files_only=True)
        except (OSError, ValueError, KeyError) as exc:
            raise EncoderError(f"hf:{arg}: cannot load a ClapModel/ClapProcessor from {model_dir}: {exc}") from exc
        finally:
            if bar_was_on:
                hf_logging.enable_progress_bar()
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        fe = processor.feature_extractor
        config = {
            "backend": "hf",
            "model_config": model.config.to_dict(),
            "feature_extractor": {k: v for k, v in fe.to_dict().items() if k not in ("processor_class",)},
            "text_max_tokens": TEXT_MAX_TOKENS,
        }
        config["model_config"].pop("transformers_version", None)
        config["model_config"].pop("_name_or_path", None)
        fp = fingerprint_of(model.state_dict(), config)
        # A local directory is recorded absolute, so a library reopens from any working directory.
        name = f"hf:{model_dir.resolve()}" if Path(arg).expanduser().exists() else f"hf:{arg}"
        return cls(name, model, processor, device, fp, config)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def config(self) -> dict[str, Any]:
        return {"backend": "hf", "truncation": self.processor.feature_extractor.truncation}

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """(B, window_samples) float32 at :attr:`sample_rate` → (B, dim) unit-norm float32."""
        w = check_windows(windows, self)
        torch = self._torch
        fe = self.processor.feature_extractor
        out = []
        with torch.inference_mode():
            for i in range(0, len(w), AUDIO_BATCH):
                chunk = w[i : i + AUDIO_BATCH]
                feats = fe(list(chunk.astype(np.float64)), sampling_rate=self.sample_rate, return_tensors="pt")
                # Windows are never longer than the clip: clear the random "longer" flag (module doc).
                is_longer = torch.zeros((len(chunk), 1), dtype=torch.bool, device=self.device)
                result = self.model.get_audio_features(
                    input_features=feats["input_features"].to(self.device), is_longer=is_longer
                )
                out.append(_pooled(result).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(out))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Strings → (B, dim) unit-norm float32."""
        texts = [str(t) for t in texts]
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), TEXT_BATCH):
                tokens = self.processor.tokenizer(
                    texts[i : i + TEXT_BATCH], padding="max_length", truncation=True,
                    max_length=TEXT_MAX_TOKENS, return_tensors="pt",
                )
                result = self.model.get_text_features(
                    input_ids=tokens["input_ids"].to(self.device),
                    attention_mask=tokens["attention_mask"].to(self.device),
                )
                out.append(_pooled(result).float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(out))


def _pooled(result: Any) -> Any:
    """The projected embedding: a tensor (transformers 4) or ``.pooler_output`` (transformers 5)."""
    return result if hasattr(result, "dim") else result.pooler_output
