"""Named errors of the evidence module."""
from __future__ import annotations


class EvidenceError(Exception):
    """Evidence cannot be computed; the message says what is wrong and what to do."""


class CheckpointMismatch(EvidenceError):
    """A decoder checkpoint belongs to another encoder (fingerprint) or decoder shape."""
