"""``laion:FILE.pt``: LAION-CLAP checkpoints through laion-clap's own model code.

Spec: ``laion:FILE.pt[?text=DIR][&amodel=NAME_OR_JSON][&fusion=0|1][&trust=1]``

- ``text``: a directory with RoBERTa's ``config.json``, ``vocab.json`` and ``merges.txt``
  (``roberta-base``'s; its weights are not needed, the checkpoint carries the text tower).
  Default: ``$EARMARK_ROBERTA_DIR``, else ``roberta-base`` from the local Hugging Face cache.
  Nothing is ever downloaded.
- ``amodel``: laion-clap's audio model config, a name from its ``model_configs`` (``HTSAT-tiny``,
  ``HTSAT-base``, ``PANN-14``, ``HTSAT-tiny-win-1536``...) or a path to a JSON file of the same
  schema. Default: read from the checkpoint's weight shapes (HTSAT tiny/base/large, PANN 6/10/14
  with their stock configs).
- ``fusion``: feature-fusion model (``*-fusion-*.pt``). Default: read from the checkpoint.
- ``trust=1``: allow a checkpoint that pickles more than tensors (``torch.load`` with
  ``weights_only=False``, which runs code from the file). Only for files you trust.

Why the model package is imported the way it is: ``import laion_clap`` runs its ``hook`` module,
whose data module fetches ``bert-base-uncased`` from the hub at import time. earmark imports the
model package ``clap_module`` on its own (as laion_clap's ``__init__`` makes it importable) and
builds the RoBERTa text tower from the local config, so nothing reaches for the network.

Windows are exactly the model's clip (``clip_samples`` at ``sample_rate``, 10 s at 48 kHz for
the published checkpoints), so laion-clap's random crop never applies, and as in its own
inference path the audio is quantised to 16 bits first. Fusion models get their
``mel_fusion`` input (four copies of the clip's log-mel, "not longer") from the same
power-mel/dB transform laion-clap computes with torchaudio, written here in torch because no
torchaudio matches the pinned torch.
"""
from __future__ import annotations

import contextlib
import importlib
import importlib.util
import json
import math
import os
import sys
import types
from copy import deepcopy
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator, Sequence
from urllib.parse import parse_qsl

import numpy as np

from .base import Encoder, EncoderError, check_windows, fingerprint_of, l2_normalise

AUDIO_BATCH = 8  # windows per forward pass: bounds memory, does not change results
TEXT_BATCH = 64
TEXT_MAX_TOKENS = 77  # laion-clap's tokenizer length
ROBERTA_FILES = ("config.json", "vocab.json", "merges.txt")
ROBERTA_ENV = "EARMARK_ROBERTA_DIR"
INSTALL_HINT = "the laion extra lives in its own environment (laion-clap pins numpy<2): see docs/encoders.md"


@dataclass(frozen=True)
class LaionSpec:
    """A parsed ``laion:`` argument."""

    checkpoint: Path
    text_dir: str | None = None
    amodel: str | None = None
    fusion: bool | None = None
    trust: bool = False

    @classmethod
    def parse(cls, arg: str) -> "LaionSpec":
        path, _, query = arg.partition("?")
        if not path:
            raise EncoderError("laion encoder needs a checkpoint: --encoder laion:FILE.pt[?text=ROBERTA_DIR]")
        opts = dict(parse_qsl(query, keep_blank_values=True, strict_parsing=False)) if query else {}
        unknown = set(opts) - {"text", "amodel", "fusion", "trust"}
        if unknown:
            raise EncoderError(f"laion:{arg}: unknown option(s) {sorted(unknown)}; known: text, amodel, fusion, trust")
        fusion = opts.get("fusion")
        if fusion not in (None, "0", "1"):
            raise EncoderError(f"laion:{arg}: fusion must be 0 or 1")
        return cls(Path(path).expanduser(), opts.get("text") or None, opts.get("amodel") or None,
                   None if fusion is None else fusion == "1", opts.get("trust") == "1")

    @staticmethod
    def absolute(arg: str) -> str:
        """``arg`` again, options in the order given, with every local path made absolute: what a
        library records, so it reopens from any working directory."""
        def abs_if_local(value: str) -> str:
            local = Path(value).expanduser()
            return str(local.resolve()) if local.exists() else value

        path, _, query = arg.partition("?")
        opts = [(k, abs_if_local(v) if k in ("text", "amodel") else v)
                for k, v in parse_qsl(query, keep_blank_values=True)] if query else []
        return abs_if_local(path) + ("?" + "&".join(f"{k}={v}" for k, v in opts) if opts else "")


def clap_module() -> Any:
    """laion-clap's model package, imported without ``laion_clap/__init__`` (see module doc)."""
    spec = importlib.util.find_spec("laion_clap")
    if spec is None or not spec.submodule_search_locations:
        raise EncoderError(f"laion encoder needs laion-clap, which is not installed here; {INSTALL_HINT}")
    root = str(Path(list(spec.submodule_search_locations)[0]))
    if root not in sys.path:
        sys.path.append(root)  # what laion_clap/__init__ does, so clap_module's own imports resolve
    try:
        with _torchvision_placeholder():
            return importlib.import_module("clap_module.model")
    except ImportError as exc:
        raise EncoderError(f"laion-clap's model code cannot be imported ({exc}); {INSTALL_HINT}") from exc


class _NeedsTorchvision:
    """Stands for a torchvision name that only laion-clap's training/image code uses."""

    def __init__(self, *_args: Any, **_kwargs: Any) -> None:
        raise EncoderError("this part of laion-clap needs torchvision, which earmark's laion backend does not use")


@contextlib.contextmanager
def _torchvision_placeholder() -> Iterator[None]:
    """Let clap_module import where torchvision is absent or broken.

    clap_module imports torchvision at module level for two things inference never calls: image
    transforms (transform.py) and FrozenBatchNorm2d (utils.py, used when freezing layers for
    training). PyPI's torchvision for torch 2.13 is a CUDA build whose C ops do not load against
    the CPU torch wheel, so with it or without it, ``import torchvision`` fails here. While
    clap_module imports, placeholders that raise if ever called stand in; they are removed from
    sys.modules right after, so nothing else in the process sees them. A working torchvision is
    used as is.
    """
    # What clap_module takes from transformers, imported first: transformers probes for
    # torchvision itself and must see the truth, not the placeholders.
    import transformers  # noqa: F401
    from transformers import BartModel, BertModel, RobertaModel  # noqa: F401
    from transformers.tokenization_utils_base import BatchEncoding  # noqa: F401

    try:
        import torchvision  # noqa: F401

        yield
        return
    except Exception:  # ImportError, or RuntimeError from a torchvision built for another torch
        for name in [m for m in sys.modules if m == "torchvision" or m.startswith("torchvision.")]:
            del sys.modules[name]
    names = ("Normalize", "Compose", "RandomResizedCrop", "InterpolationMode", "ToTensor", "Resize", "CenterCrop")
    fake = {n: types.ModuleType(n) for n in ("torchvision", "torchvision.transforms", "torchvision.ops",
                                            "torchvision.ops.misc")}
    for n in names:
        setattr(fake["torchvision.transforms"], n, _NeedsTorchvision)
    fake["torchvision.ops.misc"].FrozenBatchNorm2d = _NeedsTorchvision
    sys.modules.update(fake)
    try:
        yield
    finally:
        for n in fake:
            sys.modules.pop(n, None)


def build_clap_model(model_cfg: dict[str, Any], text_branch: Any, enable_fusion: bool) -> Any:
    """laion-clap's CLAP from a model config, with ``text_branch`` as its RoBERTa tower.

    laion-clap's constructor calls ``RobertaModel.from_pretrained('roberta-base')`` (a hub
    download); the given, locally built tower is handed to it instead for the duration of the call.
    """
    from unittest import mock

    module = clap_module()
    cfg = deepcopy(model_cfg)
    cfg["text_cfg"]["model_type"] = "roberta"
    cfg["enable_fusion"] = enable_fusion
    cfg["fusion_type"] = "aff_2d" if enable_fusion else "None"  # laion-clap's choice for its releases

    class _LocalRoberta:
        @staticmethod
        def from_pretrained(*_args: Any, **_kwargs: Any) -> Any:
            return text_branch

    with mock.patch.object(module, "RobertaModel", _LocalRoberta):
        return module.CLAP(**cfg)


def detect_architecture(state: dict[str, Any]) -> tuple[str, bool]:
    """(laion-clap config name, fusion) read from a checkpoint's weight names and shapes."""
    fusion = any(".fusion_model." in k or ".mel_conv2d." in k or ".mel_conv1d." in k for k in state)
    patch = state.get("audio_branch.patch_embed.proj.weight")
    if patch is not None:
        size = {96: "tiny", 128: "base", 256: "large"}.get(int(patch.shape[0]))
        if size:
            return f"HTSAT-{size}", fusion
    if "audio_branch.conv_block6.conv1.weight" in state:
        return "PANN-14", fusion
    if "audio_branch.conv_block4.conv2.weight" in state:
        return "PANN-10", fusion
    if "audio_branch.conv_block4.conv1.weight" in state:
        return "PANN-6", fusion
    raise EncoderError("cannot tell the audio model of this checkpoint; give it with ?amodel=NAME_OR_JSON")


def read_model_config(amodel: str) -> dict[str, Any]:
    """A laion-clap model config by name (its model_configs/NAME.json) or from a JSON file."""
    path = Path(amodel).expanduser()
    if amodel.endswith(".json"):
        if not path.exists():
            raise EncoderError(f"amodel config {path} not found")
    else:
        module = clap_module()
        path = Path(module.__file__).resolve().parent / "model_configs" / f"{amodel}.json"
        if not path.exists():
            names = sorted(p.stem for p in path.parent.glob("*.json"))
            raise EncoderError(f"laion-clap has no model config '{amodel}'; known: {', '.join(names)}")
    cfg = json.loads(path.read_text())
    if not all(k in cfg for k in ("embed_dim", "audio_cfg", "text_cfg")):
        raise EncoderError(f"{path} is not a laion-clap model config (needs embed_dim, audio_cfg, text_cfg)")
    return cfg


def resolve_roberta_dir(text_dir: str | None) -> Path:
    """The local RoBERTa directory: ?text=, then $EARMARK_ROBERTA_DIR, then the HF cache."""
    if text_dir is None:
        text_dir = os.environ.get(ROBERTA_ENV) or None
    if text_dir is None:
        try:
            from huggingface_hub import snapshot_download

            return Path(snapshot_download(repo_id="roberta-base", local_files_only=True,
                                          allow_patterns=list(ROBERTA_FILES)))
        except Exception as exc:  # LocalEntryNotFoundError and friends: one clear message below
            raise EncoderError(
                "laion encoder needs roberta-base's tokenizer and config (config.json, vocab.json, merges.txt) "
                f"and found none: not given with ?text=DIR, {ROBERTA_ENV} is unset, and roberta-base is not in the "
                "local Hugging Face cache. Put the three files in a directory and pass laion:FILE.pt?text=DIR "
                f"(or set {ROBERTA_ENV}); `huggingface-cli download roberta-base {' '.join(ROBERTA_FILES)}` "
                "fetches them on a connected machine"
            ) from exc
    path = Path(text_dir).expanduser()
    missing = [f for f in ROBERTA_FILES if not (path / f).exists()]
    if missing:
        raise EncoderError(
            f"RoBERTa directory {path} lacks {', '.join(missing)}; it needs roberta-base's "
            f"{', '.join(ROBERTA_FILES)} (the weights are not needed: the checkpoint carries them)"
        )
    return path


def load_checkpoint(path: Path, trust: bool) -> dict[str, Any]:
    """A LAION checkpoint's state dict, "module." prefixes removed."""
    import pickle

    import torch

    if not path.is_file():
        raise EncoderError(
            f"LAION-CLAP checkpoint {path} not found. Download a .pt (e.g. 630k-audioset-best.pt) from the "
            f"LAION-CLAP release page on a connected machine and give its path: --encoder laion:/path/to/FILE.pt"
        )
    try:
        payload = torch.load(path, map_location="cpu", weights_only=not trust)
    except pickle.UnpicklingError as exc:
        raise EncoderError(
            f"{path} holds pickled objects beyond tensors; if you trust the file, load it with "
            f"laion:{path}?trust=1 ({str(exc).splitlines()[0]})"
        ) from exc
    except (RuntimeError, EOFError, OSError) as exc:
        raise EncoderError(f"{path} is not a readable torch checkpoint: {exc}") from exc
    state = payload.get("state_dict", payload) if isinstance(payload, dict) else None
    if not isinstance(state, dict) or not state:
        raise EncoderError(f"{path} has no state dict")
    # DataParallel prefixes; position_ids is a buffer newer transformers no longer saves.
    state = {(k[7:] if k.startswith("module.") else k): v for k, v in state.items()}
    state.pop("text_branch.embeddings.position_ids", None)
    return state


def fusion_mel(wave: "torch.Tensor", audio_cfg: dict[str, Any]) -> "torch.Tensor":
    """(B, samples) → (B, 4, frames, mel_bins) dB power-mel stack laion-clap feeds fusion models.

    Same transform as laion-clap's ``get_mel`` (torchaudio MelSpectrogram: Hann window, centred
    reflect padding, power 2, HTK mel scale, no filter norm; then 10·log10(max(x, 1e-10))).
    """
    import torch

    n_fft, hop, n_mels = int(audio_cfg["window_size"]), int(audio_cfg["hop_size"]), int(audio_cfg["mel_bins"])
    sr, fmin, fmax = int(audio_cfg["sample_rate"]), float(audio_cfg["fmin"]), float(audio_cfg["fmax"])
    window = torch.hann_window(n_fft, device=wave.device, dtype=wave.dtype)
    spec = torch.stft(wave, n_fft, hop_length=hop, win_length=n_fft, window=window, center=True,
                      pad_mode="reflect", onesided=True, return_complex=True).abs() ** 2  # (B, F, T)
    freqs = torch.linspace(0, sr // 2, n_fft // 2 + 1, dtype=torch.float64)

    def hz_to_mel(f: float) -> float:
        return 2595.0 * math.log10(1.0 + f / 700.0)

    m_pts = torch.linspace(hz_to_mel(fmin), hz_to_mel(fmax), n_mels + 2, dtype=torch.float64)
    f_pts = 700.0 * (10.0 ** (m_pts / 2595.0) - 1.0)
    f_diff = f_pts[1:] - f_pts[:-1]
    slopes = f_pts[None, :] - freqs[:, None]
    down, up = -slopes[:, :-2] / f_diff[:-1], slopes[:, 2:] / f_diff[1:]
    fbank = torch.clamp(torch.minimum(down, up), min=0).to(wave.dtype).to(wave.device)  # (F, n_mels)
    mel = torch.einsum("bft,fm->btm", spec, fbank)
    db = 10.0 * torch.log10(torch.clamp(mel, min=1e-10))
    return db[:, None].expand(-1, 4, -1, -1).contiguous()


class LaionClapEncoder(Encoder):
    """A LAION-CLAP checkpoint in eval mode behind the earmark Encoder interface."""

    def __init__(self, name: str, model: Any, tokenizer: Any, model_cfg: dict[str, Any], fusion: bool,
                 device: str, fingerprint: str, config: dict[str, Any]) -> None:
        import torch

        self._torch = torch
        self.name = name
        self.model = model.to(device).eval()
        self.tokenizer = tokenizer
        self.audio_cfg = dict(model_cfg["audio_cfg"])
        self.fusion = fusion
        self.device = device
        self._fingerprint = fingerprint
        self._config = config
        self.sample_rate = int(self.audio_cfg["sample_rate"])
        self.window_seconds = int(self.audio_cfg["clip_samples"]) / self.sample_rate
        self.dim = int(model.joint_embed_shape)
        # laion-clap's Cnn6/Cnn10 take the waveform tensor; HTSAT and Cnn14 take the input dict.
        self._wave_only = self.audio_cfg["model_type"] == "PANN" and self.audio_cfg["model_name"] in ("Cnn6", "Cnn10")

    @classmethod
    def load(cls, arg: str, device: str | None = None) -> "LaionClapEncoder":
        """Load ``FILE.pt[?options]`` (module doc) onto ``device`` (None: CUDA when available)."""
        spec = LaionSpec.parse(arg)
        clap_module()  # fail early, with the install hint, when laion-clap is absent
        import torch
        from transformers import RobertaConfig, RobertaModel, RobertaTokenizer

        state = load_checkpoint(spec.checkpoint, spec.trust)
        detected, detected_fusion = (None, None)
        if spec.amodel is None or spec.fusion is None:
            detected, detected_fusion = detect_architecture(state)
        amodel = spec.amodel or detected
        fusion = detected_fusion if spec.fusion is None else spec.fusion
        model_cfg = read_model_config(amodel)
        roberta_dir = resolve_roberta_dir(spec.text_dir)
        try:
            tokenizer = RobertaTokenizer.from_pretrained(str(roberta_dir), local_files_only=True)
            text_branch = RobertaModel(RobertaConfig.from_pretrained(str(roberta_dir), local_files_only=True))
        except (OSError, ValueError) as exc:
            raise EncoderError(f"cannot read the RoBERTa config/tokenizer in {roberta_dir}: {exc}") from exc
        model = build_clap_model(model_cfg, text_branch, fusion)
        try:
            result = model.load_state_dict(state, strict=False)
            problem = (f"missing {result.missing_keys[:4]}, unexpected {result.unexpected_keys[:4]}"
                       if result.missing_keys or result.unexpected_keys else "")
        except RuntimeError as exc:  # shape mismatches
            problem = str(exc).splitlines()[1].strip() if "\n" in str(exc) else str(exc)
        if problem:
            raise EncoderError(
                f"{spec.checkpoint} does not fit audio model '{amodel}' (fusion={int(fusion)}): {problem}; "
                f"pass the right ?amodel= and ?fusion="
            )
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        # The config's content, not where a JSON config lies, goes into the fingerprint.
        amodel_name = Path(amodel).stem if amodel.endswith(".json") else amodel
        config = {"backend": "laion", "amodel": amodel_name, "model_cfg": model_cfg, "fusion": fusion,
                  "text_max_tokens": TEXT_MAX_TOKENS, "roberta": RobertaConfig.from_pretrained(str(roberta_dir)).to_dict()}
        config["roberta"].pop("transformers_version", None)
        config["roberta"].pop("_name_or_path", None)
        fp = fingerprint_of(model.state_dict(), config)
        return cls(f"laion:{LaionSpec.absolute(arg)}", model, tokenizer, model_cfg, fusion, device, fp, config)

    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def config(self) -> dict[str, Any]:
        return {"backend": "laion", "amodel": self._config["amodel"], "fusion": self.fusion}

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """(B, clip_samples) float32 at :attr:`sample_rate` → (B, 512) unit-norm float32."""
        w = check_windows(windows, self)
        # laion-clap's inference quantises to 16 bits (int16_to_float32(float32_to_int16(x))).
        w = (np.clip(w, -1.0, 1.0) * 32767.0).astype(np.int16).astype(np.float32) / 32767.0
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(w), AUDIO_BATCH):
                wave = torch.from_numpy(np.ascontiguousarray(w[i : i + AUDIO_BATCH])).to(self.device)
                batch: Any = {"waveform": wave, "longer": torch.zeros((len(wave), 1), dtype=torch.bool, device=self.device)}
                if self.fusion:
                    batch["mel_fusion"] = fusion_mel(wave, self.audio_cfg)
                if self._wave_only:
                    batch = wave
                emb = self.model.audio_projection(self.model.encode_audio(batch, device=self.device)["embedding"])
                out.append(emb.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(out))

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """Strings → (B, 512) unit-norm float32."""
        texts = [str(t) for t in texts]
        torch = self._torch
        out = []
        with torch.inference_mode():
            for i in range(0, len(texts), TEXT_BATCH):
                tokens = self.tokenizer(texts[i : i + TEXT_BATCH], padding="max_length", truncation=True,
                                        max_length=TEXT_MAX_TOKENS, return_tensors="pt")
                emb = self.model.encode_text({k: v.to(self.device) for k, v in tokens.items()}, device=self.device)
                out.append(emb.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return l2_normalise(np.concatenate(out))
