"""Tiny randomly initialised encoder models, built locally for the backend conformance tests.

Nothing here downloads: tokenizers are trained on a few sentences with the ``tokenizers``
library, models are constructed from small configs with a fixed seed and saved in the exact
on-disk format each backend reads (``save_pretrained`` for ``hf``, a LAION-CLAP ``.pt``
checkpoint + a RoBERTa config/tokenizer directory for ``laion``).
"""
from __future__ import annotations

import json
from pathlib import Path

# Sentences for the tiny byte-level BPE vocabulary; content is irrelevant, only coverage.
_CORPUS = [
    "a dog barks loudly in the yard",
    "rain falls on a tin roof",
    "a car engine hums and revs",
    "birds sing in the morning",
    "glass breaks, footsteps on gravel, thunder",
    "the sound of a door creaking open",
]
_SPECIAL = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]  # RoBERTa's ids 0..4


def build_roberta_tokenizer(out_dir: Path, vocab_size: int = 400):
    """Train a byte-level BPE on a few sentences; save vocab.json/merges.txt + tokenizer files.

    Returns the loaded transformers RobertaTokenizer (ids: <s>=0, <pad>=1, </s>=2).
    """
    from tokenizers import ByteLevelBPETokenizer
    from transformers import RobertaTokenizer

    out_dir.mkdir(parents=True, exist_ok=True)
    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator(_CORPUS * 4, vocab_size=vocab_size, min_frequency=1, special_tokens=_SPECIAL)
    bpe.save_model(str(out_dir))  # vocab.json + merges.txt, the files RobertaTokenizer reads
    tok = RobertaTokenizer.from_pretrained(str(out_dir), model_max_length=512)
    tok.save_pretrained(str(out_dir))
    return tok


# ---------------------------------------------------------------------------------------- hf
HF_SAMPLE_RATE = 16000  # Hz; the tiny model's clip is 1 s so tests stay fast
HF_DIM = 24


def build_tiny_hf_clap(out_dir: Path, seed: int = 0) -> Path:
    """A ~40k-parameter ClapModel + ClapProcessor saved with save_pretrained into ``out_dir``."""
    import torch
    from transformers import ClapConfig, ClapFeatureExtractor, ClapModel, ClapProcessor

    tok = build_roberta_tokenizer(out_dir)
    text = dict(vocab_size=len(tok), hidden_size=32, num_hidden_layers=2, num_attention_heads=2,
                intermediate_size=64, max_position_embeddings=96, projection_dim=HF_DIM)
    audio = dict(num_mel_bins=16, spec_size=64, window_size=4, patch_size=4, patch_stride=(4, 4),
                 depths=[1, 1], num_attention_heads=[2, 2], patch_embeds_hidden_size=16, hidden_size=32,
                 num_hidden_layers=2, projection_dim=HF_DIM)
    torch.manual_seed(seed)
    model = ClapModel(ClapConfig(text_config=text, audio_config=audio, projection_dim=HF_DIM)).eval()
    fe = ClapFeatureExtractor(feature_size=16, sampling_rate=HF_SAMPLE_RATE, hop_length=160, max_length_s=1,
                              fft_window_size=400, frequency_max=HF_SAMPLE_RATE // 2, truncation="rand_trunc")
    ClapProcessor(feature_extractor=fe, tokenizer=tok).save_pretrained(str(out_dir))
    model.save_pretrained(str(out_dir))
    return out_dir


# ------------------------------------------------------------------------------------- laion
LAION_SAMPLE_RATE = 16000  # Hz
LAION_CLIP_SECONDS = 1.0
LAION_DIM = 512  # laion-clap's joint embedding width is fixed by its model code


def tiny_laion_model_config(fusion: bool = False) -> dict:
    """A laion-clap model config (same schema as its model_configs/*.json) for a small PANN Cnn6."""
    return {
        "embed_dim": 512,
        "audio_cfg": {
            "audio_length": 1024,
            "clip_samples": int(LAION_SAMPLE_RATE * LAION_CLIP_SECONDS),
            "mel_bins": 64,  # PANN hard-codes its input BatchNorm to 64 bands
            "sample_rate": LAION_SAMPLE_RATE,
            "window_size": 512,
            "hop_size": 160,
            "fmin": 50,
            "fmax": 8000,
            "class_num": 527,
            "model_type": "PANN",
            "model_name": "Cnn6",
        },
        "text_cfg": {"context_length": 77, "vocab_size": 0, "width": 768, "heads": 2, "layers": 1},
    }


def build_tiny_roberta_dir(out_dir: Path) -> Path:
    """config.json of a 1-layer RoBERTa (width 768, which laion-clap's text head hard-codes) + tokenizer."""
    from transformers import RobertaConfig

    tok = build_roberta_tokenizer(out_dir)
    RobertaConfig(vocab_size=len(tok), hidden_size=768, num_hidden_layers=1, num_attention_heads=2,
                  intermediate_size=64, max_position_embeddings=80, type_vocab_size=1,
                  pad_token_id=1, bos_token_id=0, eos_token_id=2).save_pretrained(str(out_dir))
    return out_dir


def build_tiny_laion_checkpoint(out_dir: Path, seed: int = 0, fusion: bool = False) -> tuple[Path, Path, Path]:
    """Build a random laion-clap CLAP from the tiny configs and save it as LAION does.

    Returns (checkpoint.pt, model-config.json, roberta_dir). The checkpoint has LAION's layout:
    {"epoch", "state_dict"} with every key prefixed "module." (DataParallel) and the RoBERTa
    ``position_ids`` buffer present, as in the published 630k-*.pt files.
    """
    import torch
    from transformers import RobertaConfig, RobertaModel

    from earmark.engine.encoders.laion import build_clap_model

    out_dir.mkdir(parents=True, exist_ok=True)
    roberta_dir = build_tiny_roberta_dir(out_dir / "roberta")
    cfg = tiny_laion_model_config(fusion)
    cfg_path = out_dir / "tiny-pann.json"
    cfg_path.write_text(json.dumps(cfg, indent=2))
    torch.manual_seed(seed)
    text_branch = RobertaModel(RobertaConfig.from_pretrained(str(roberta_dir)), add_pooling_layer=True)
    model = build_clap_model(cfg, text_branch, enable_fusion=fusion)
    state = {f"module.{k}": v for k, v in model.state_dict().items()}
    n_pos = text_branch.config.max_position_embeddings
    state["module.text_branch.embeddings.position_ids"] = torch.arange(n_pos)[None, :]
    ckpt = out_dir / ("tiny-fusion.pt" if fusion else "tiny.pt")
    torch.save({"epoch": 1, "state_dict": state}, ckpt)
    return ckpt, cfg_path, roberta_dir


def build_stock_laion_checkpoint(out_dir: Path, amodel: str = "HTSAT-tiny", fusion: bool = False,
                                 seed: int = 0) -> tuple[Path, Path]:
    """A random CLAP with one of laion-clap's stock configs (the published checkpoints' shapes).

    Returns (checkpoint.pt, roberta_dir). Full size (HTSAT-tiny: ~28M audio parameters): slow tests only.
    """
    import torch
    from transformers import RobertaConfig, RobertaModel

    from earmark.engine.encoders.laion import build_clap_model, read_model_config

    out_dir.mkdir(parents=True, exist_ok=True)
    roberta_dir = build_tiny_roberta_dir(out_dir / "roberta")
    torch.manual_seed(seed)
    text_branch = RobertaModel(RobertaConfig.from_pretrained(str(roberta_dir)), add_pooling_layer=True)
    model = build_clap_model(read_model_config(amodel), text_branch, enable_fusion=fusion)
    ckpt = out_dir / f"{amodel}{'-fusion' if fusion else ''}.pt"
    torch.save({"epoch": 1, "state_dict": {f"module.{k}": v for k, v in model.state_dict().items()}}, ckpt)
    return ckpt, roberta_dir
