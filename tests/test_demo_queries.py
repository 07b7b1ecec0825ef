"""The shipped weights on the README's main job: `earmark demo`'s library answers plain queries
with the sound they name.

A quality gate for new embedded weights: the validation split and the everyday benchmark can both
improve while the demo's own queries break (an encoder once ranked a crow, a choir and a burp
above every speech file for "+speech"). Each query below names one demo sound (or one of a few);
every answer must be in the top 3 and at least 85 % of them first. Most demo sounds come from the
training packages (24 of 34 have an exemplar at cosine > 0.97), so this guards the product's plain
queries; it is no held-out measure of quality (docs/model-card.md, v12).
"""
from __future__ import annotations

import pytest

from earmark.engine.demo import EXAMPLE_QUERIES, demo_sounds_dir, run_demo

SPEECH = ("speech_en_male", "speech_en_female", "speech_de_female", "speech_fr_male")
# (query, the demo sounds that answer it)
QUERIES: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("speech", SPEECH),
    ("+speech", SPEECH),
    ("a man speaking", ("speech_en_male", "speech_fr_male")),
    ("a woman talking", ("speech_en_female", "speech_de_female")),
    ("a crackling campfire", ("campfire",)),
    ("fire", ("campfire",)),
    ("birds singing", ("birds",)),
    ("running water", ("stream",)),
    ("wind", ("wind",)),
    ("footsteps", ("footsteps",)),
    ("a door closing", ("door_close",)),
    ("a bell", ("bell",)),
    ("drums", ("drum_break",)),
    ("drums -speech", ("drum_break",)),
    ("a snare drum", ("snare_drum",)),
    ("a bass drum", ("bass_drum",)),
    ("piano", ("piano",)),
    ("a guitar", ("guitar_chord",)),
    ("choir singing", ("choir",)),
    ("a crow cawing", ("crow",)),
    ("white noise", ("white_noise",)),
    ("a beep", ("beep",)),
    ("a burp", ("burp",)),
    ("an explosion", ("cinematic_boom",)),
    ("a cymbal", ("cymbal",)),
    ("vinyl scratching", ("vinyl_scratch",)),
    ("clicking", ("clicks",)),
    ("a rising sweep", ("rising_sweep",)),
)


@pytest.fixture(scope="module")
def ranked(tmp_path_factory) -> dict[str, list[str]]:
    """Each query's top 3 demo sounds (file stems), from a demo library on the shipped weights."""
    run = run_demo(tmp_path_factory.mktemp("demo"), [q for q, _ in QUERIES], k=3, progress=False)
    assert run.failed == 0 and run.indexed == len(list(demo_sounds_dir().glob("*.ogg")))
    return {q: [h.path.rsplit("/", 1)[-1].removesuffix(".ogg") for h in res.hits]
            for (q, _), res in zip(QUERIES, run.results)}


def test_the_queries_name_real_demo_sounds() -> None:
    """Guards the table above: a renamed demo file would otherwise make its query unanswerable."""
    stems = {p.stem for p in demo_sounds_dir().glob("*.ogg")}
    assert {s for _, answers in QUERIES for s in answers} <= stems
    # the demo's own text queries are among them
    assert {q for q in EXAMPLE_QUERIES if "like:" not in q} <= {q for q, _ in QUERIES}


def test_every_query_finds_its_sound_in_the_top_three(ranked) -> None:
    misses = {q: top for q, answers in QUERIES if not set(ranked[q]) & set(answers) for top in [ranked[q]]}
    assert not misses, f"answer not in the top 3: {misses}"


def test_most_queries_rank_their_sound_first(ranked) -> None:
    firsts = [q for q, answers in QUERIES if ranked[q][0] in answers]
    wrong = {q: ranked[q][0] for q, _ in QUERIES if q not in firsts}
    assert len(firsts) >= 0.85 * len(QUERIES), f"first hit wrong for {wrong}"


def test_speech_queries_rank_a_speech_file_first(ranked) -> None:
    """The demo's "+speech" example and its plain form: no exceptions allowed here."""
    assert ranked["speech"][0] in SPEECH and ranked["+speech"][0] in SPEECH
