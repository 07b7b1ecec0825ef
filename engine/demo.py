"""`earmark demo`: build a library from the sounds shipped in the package and search it.

The demo sounds (engine/demo_sounds/, ~30 short clips with their licences in LICENSES.md) are
indexed with the embedded encoder, then a few example queries show text, concept and
example-sound search with their explanations, and the first text query's top hit gets its
listenable evidence (L-MAC mask-in / mask-out WAVs and a picture).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from .encoders.base import DifferentiableAudioEncoder
from .library import EncoderMismatch, Library
from .library_evidence import EvidenceFiles
from .search import SearchResult

DEMO_SOUNDS = Path(__file__).resolve().parent / "demo_sounds"
EXAMPLE_QUERIES = (  # the first one's top hit gets its evidence rendered
    "running water",
    "birds singing",
    "a crackling campfire",
    "+speech",
    "drums -speech",
    "like:{demo}/bell.ogg",
)


@dataclass
class DemoRun:
    library: Path
    indexed: int
    failed: int
    results: list[SearchResult]
    reembedded: int = 0  # sounds of a demo library from an earlier encoder, embedded again
    evidence: EvidenceFiles | None = None  # the first text query's top hit, when the encoder can render it


def demo_sounds_dir() -> Path:
    if not DEMO_SOUNDS.is_dir() or not any(DEMO_SOUNDS.glob("*.ogg")):
        raise FileNotFoundError(f"the demo sounds are missing from the installation ({DEMO_SOUNDS})")
    return DEMO_SOUNDS


def run_demo(directory: str | Path, queries: tuple[str, ...] | list[str] = (), k: int = 5,
             encoder: str = "embedded", progress: bool = True) -> DemoRun:
    """Create (or reuse) a demo library in ``directory``, index the demo sounds, run the queries."""
    sounds = demo_sounds_dir()
    path = Path(directory)
    lib = Library(path) if (path / "earmark.db").exists() else Library.init(path, encoder=encoder)
    reembedded = 0
    try:
        lib.encoder
    except EncoderMismatch:
        # A demo library left by an earlier release (other shipped weights): it holds nothing
        # but the demo sounds, so it moves to this encoder without asking. Any other library
        # keeps the refusal, which names `earmark reembed`.
        if [Path(r) for r in lib.status().roots] != [sounds]:
            raise
        reembedded = lib.reembed(progress=progress).reembedded
    report = lib.index([sounds], progress=progress)
    qs = list(queries) or [q.format(demo=sounds) for q in EXAMPLE_QUERIES]
    results = [lib.search(q, k=k) for q in qs]
    st = lib.status()
    return DemoRun(lib.path, st.sounds_indexed, st.sounds_failed + len(report.failed), results, reembedded,
                   _first_evidence(lib, results))


def _first_evidence(lib: Library, results: list[SearchResult]) -> EvidenceFiles | None:
    """Evidence for the top hit of the first query with text to explain (like: queries have none);
    None when no query has text and hits, or the encoder has no spectrogram face to mask."""
    if not isinstance(lib.encoder, DifferentiableAudioEncoder):
        return None
    for res in results:
        q = res.query
        if res.hits and not q.like and (q.free_text or any(c.weight > 0 for c in q.concepts)):
            hit = res.hits[0]  # its best window is known: no second search for it
            return lib.evidence(hit.sound_id, q.text, hit.start, hit.end)
    return None
