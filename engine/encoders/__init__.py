"""Encoder backends behind one interface, chosen by a ``library:model`` spec string.

- ``embedded`` (default): the small CLAP-style model shipped inside the package.
- ``hf:DIR_OR_HUB_ID``: transformers ClapModel/ClapProcessor (extra ``hf``).
- ``laion:FILE.pt``: LAION-CLAP checkpoints through laion-clap (extra ``laion``).
- ``py:module:attr``: a custom Encoder class or factory importable from Python (plug-ins).
"""
from __future__ import annotations

import importlib
from typing import Callable

from .base import DifferentiableAudioEncoder, Encoder, EncoderError, EncoderInfo

DEFAULT_ENCODER = "embedded"

__all__ = [
    "DEFAULT_ENCODER",
    "DifferentiableAudioEncoder",
    "Encoder",
    "EncoderError",
    "EncoderInfo",
    "load_encoder",
]


def _load_embedded(arg: str, device: str | None) -> Encoder:
    from .embedded import EmbeddedEncoder

    return EmbeddedEncoder.load(arg or None, device=device)


def _load_hf(arg: str, device: str | None) -> Encoder:
    from .hf import HFClapEncoder

    return HFClapEncoder.load(arg, device=device)


def _load_laion(arg: str, device: str | None) -> Encoder:
    from .laion import LaionClapEncoder

    return LaionClapEncoder.load(arg, device=device)


def _load_plugin(arg: str, device: str | None) -> Encoder:
    module_name, _, attr = arg.partition(":")
    if not module_name or not attr:
        raise EncoderError(f"plug-in encoder spec must be 'py:module:attr', got 'py:{arg}'")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise EncoderError(f"cannot import encoder plug-in 'py:{arg}': {exc}") from exc
    enc = factory(device=device) if device else factory()
    if not isinstance(enc, Encoder):
        raise EncoderError(f"'py:{arg}' did not produce an earmark Encoder")
    return enc


_BACKENDS: dict[str, Callable[[str, str | None], Encoder]] = {
    "embedded": _load_embedded,
    "hf": _load_hf,
    "laion": _load_laion,
    "py": _load_plugin,
}


def load_encoder(spec: str = DEFAULT_ENCODER, device: str | None = None) -> Encoder:
    """Load an encoder from a spec string such as ``embedded``, ``hf:DIR`` or ``laion:FILE.pt``.

    ``device`` defaults to CUDA when available, else CPU.
    """
    spec = (spec or DEFAULT_ENCODER).strip()
    backend, _, arg = spec.partition(":")
    if backend not in _BACKENDS:
        raise EncoderError(
            f"unknown encoder '{spec}': use one of embedded, hf:DIR_OR_HUB_ID, laion:FILE.pt, py:module:attr"
        )
    return _BACKENDS[backend](arg, device)


def default_device() -> str:
    """'cuda' when a CUDA device is usable, else 'cpu'."""
    import torch

    return "cuda" if torch.cuda.is_available() else "cpu"
