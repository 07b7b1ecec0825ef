"""Search on a library of generated sounds whose content is known."""
from __future__ import annotations

import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from conftest import noise, tone, write, write_known_sounds
from earmark.engine.query.parse import QuerySyntaxError, UnknownConceptError, parse_query


@pytest.fixture
def known(library, tmp_path):
    d = write_known_sounds(tmp_path / "known")
    library.index([d])
    return library, d


def paths(res):
    return [h.path for h in res.hits]


@pytest.mark.parametrize("ranking", ["fusion", "dense", "concept"])
def test_noise_outranks_a_beep_for_plus_noise(known, ranking):
    lib, _ = known
    order = paths(lib.search("+noise", ranking=ranking))
    assert order[0] in ("white_noise.wav", "sub/beep_then_noise.wav")
    if "beep.wav" in order:
        assert order.index("white_noise.wav") < order.index("beep.wav")


def test_dense_is_the_default_ranking_and_fusion_stays_an_option(known):
    lib, _ = known
    assert lib.search("a high beep").query.ranking == "dense"
    fused = lib.search("a high beep", ranking="fusion")
    assert fused.query.ranking == "fusion" and fused.hits


def test_text_query_finds_the_beep_first(known):
    lib, _ = known
    order = paths(lib.search("a high beep", ranking="dense"))
    # beep_then_noise opens with the same beep, so its best window ties with beep.wav
    assert order[0] in ("beep.wav", "sub/beep_then_noise.wav")
    assert order.index("beep.wav") < order.index("white_noise.wav")
    assert order.index("beep.wav") < order.index("hum.flac")


def test_contributions_sum_exactly_to_the_concept_score(known):
    lib, _ = known
    for q in ("+noise", "+beep +hum", "high beep", "rain:0.5 noise:2"):
        for h in lib.search(q, ranking="concept").hits:
            assert math.isclose(sum(c.contribution for c in h.contributions), h.concept_score, rel_tol=1e-5, abs_tol=1e-6)
            assert math.isclose(h.score, h.concept_score, rel_tol=1e-6)
            for c in h.contributions:
                assert math.isclose(c.query_weight * c.hit_weight, c.contribution, rel_tol=1e-5)


def test_minus_concept_excludes(known):
    lib, _ = known
    with_noise = lib.search("+beep", k=10, ranking="dense")
    without = lib.search("+beep -noise", k=10, ranking="dense")
    postings = lib.indexes().postings
    noise_id = lib.vocabulary().index("noise")
    for h in without.hits:
        assert noise_id not in set(postings.codes_of(h.segment_id).concept_ids.tolist())
    assert "white_noise.wav" in paths(with_noise) and "white_noise.wav" not in paths(without)
    assert without.query.excluded == ["noise"]


def test_identical_files_are_shown_once(known):
    lib, d = known
    res = lib.search("a high beep", ranking="dense")
    beeps = [h for h in res.hits if h.path in ("beep.wav", "sub/beep_copy.wav")]
    assert len(beeps) == 1 and len(beeps[0].duplicates) == 1


def test_like_file_finds_that_file_first(known, tmp_path):
    lib, d = known
    assert paths(lib.search(f"like:{d / 'hum.flac'}"))[0] == "hum.flac"
    # a file that is not in the library is embedded on the fly
    probe = write(tmp_path / "probe.wav", tone(90, 1.7, 22050), 22050)
    assert paths(lib.search(f"like:{probe}", ranking="dense"))[0] == "hum.flac"
    # a time range picks the part of the file: the noise half of beep_then_noise
    res = lib.search(f"like:{d / 'sub' / 'beep_then_noise.wav'}@1.5-3", ranking="dense", k=2)
    assert set(paths(res)) == {"sub/beep_then_noise.wav", "white_noise.wav"}


def test_similar_excludes_the_sound_itself_but_not_its_copy(known):
    lib, d = known
    res = lib.similar(str(d / "beep.wav"))
    assert res.hits[0].path == "sub/beep_copy.wav"
    assert all(h.path != "beep.wav" for h in res.hits)


def test_similar_by_root_relative_path_from_anywhere(known, tmp_path, monkeypatch):
    """`earmark similar beep.wav` names an indexed sound even when the shell is elsewhere."""
    lib, d = known
    monkeypatch.chdir(tmp_path)  # no beep.wav here
    by_name = lib.similar("beep.wav")
    by_path = lib.similar(str(d / "beep.wav"))
    assert [h.path for h in by_name.hits] == [h.path for h in by_path.hits]
    assert by_name.hits[0].path == "sub/beep_copy.wav"


def test_best_window_time_range(known):
    lib, _ = known
    res = lib.search("+beep", ranking="concept", path_glob="sub/*")
    hit = next(h for h in res.hits if h.path == "sub/beep_then_noise.wav")
    assert hit.start == 0.0  # the beep is in the first second


def test_filters(known):
    lib, _ = known
    assert set(paths(lib.search("noise dur:>2.8"))) == {"white_noise.wav", "sub/beep_then_noise.wav"}
    assert set(paths(lib.search("noise", path_glob="sub/*"))) <= {"sub/beep_then_noise.wav", "sub/beep_copy.wav"}
    assert paths(lib.search("beep dur:<1")) == []


def test_explain_and_dense_account(known):
    lib, _ = known
    hit = lib.explain("+noise", "white_noise.wav", ranking="dense")
    assert hit.dense_contributions and hit.dense_explained is not None
    assert 0 < hit.dense_explained <= 1.5
    assert hit.top_concepts[0].weight >= hit.top_concepts[-1].weight


@pytest.mark.parametrize("ranking", ["fusion", "dense", "concept"])
def test_explain_shows_the_hit_the_search_showed(known, ranking):
    """Same window, same score as in the result list (fusion ranks against the whole library)."""
    lib, _ = known
    for hit in lib.search("a high beep", ranking=ranking).hits:
        again = lib.explain("a high beep", hit.sound_id, ranking=ranking)
        assert (again.start, again.end, again.score) == (hit.start, hit.end, hit.score), hit.path
        assert [c.concept for c in again.contributions] == [c.concept for c in hit.contributions]


def test_query_form_says_what_earmark_understood(known):
    lib, _ = known
    form = lib.search("a high beep").query
    assert form.free_text == "a high beep"
    assert form.concepts and all(c.weight > 0 for c in form.concepts)
    assert form.concepts[0].weight >= form.concepts[-1].weight
    assert form.borrowed_from == []  # an encoder without sound prototypes borrows nothing


VOCAB = ["rain", "thunder", "dog barking", "music", "white noise"]


@pytest.mark.parametrize(
    "query,message",
    [
        ('"rain on a', "unbalanced double quote"),
        ("", "nothing to search for"),
        ("   ", "nothing to search for"),
        ("-music", "nothing to search for"),
        ("+ rain", "needs a concept"),
        ("++rain", "unknown operator"),
        ("foo:bar rain", "unknown operator 'foo:'"),
        ("rain:abc", "unknown operator"),
        ("x" * 10240, "limit is 2000"),
        (b"rain \xff\xfe", "not valid UTF-8"),
        ("like:", "needs a file"),
        ("like:a.wav@5-2", "ends before it starts"),
        ("rain dur:abc", "must be >N"),
        ("rain:0", "non-zero"),
        ("rain\x00", "control characters"),
    ],
)
def test_malformed_queries_give_clear_errors(query, message):
    with pytest.raises(QuerySyntaxError, match=message):
        parse_query(query, VOCAB)


def test_unknown_concept_suggests():
    with pytest.raises(UnknownConceptError) as err:
        parse_query("+thundr", VOCAB)
    assert err.value.suggestions[0] == "thunder"


def test_parse_forms():
    p = parse_query('rain on a roof +"dog barking" -music white_noise:0.5 like:"my file.wav"@1.5-4 path:*/sfx/* dur:2-10', VOCAB)
    assert p.free_text == "rain on a roof"
    assert [(c.text, c.weight) for c in p.concepts] == [("dog barking", 1.0), ("music", -1.0), ("white noise", 0.5)]
    assert (p.like[0].path, p.like[0].start, p.like[0].end) == ("my file.wav", 1.5, 4.0)
    assert (p.filters.path_glob, p.filters.min_duration, p.filters.max_duration) == ("*/sfx/*", 2.0, 10.0)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_fuzz_parser_never_crashes(q):
    try:
        parse_query(q, VOCAB)
    except QuerySyntaxError:
        pass


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
@given(st.text(alphabet=st.sampled_from(list('+-:"@ .abcnoiserwt0123')), max_size=40))
def test_fuzz_search_gives_result_or_clear_error(known, q):
    lib, _ = known
    try:
        res = lib.search(q, k=3)
    except QuerySyntaxError:
        return
    for h in res.hits:
        assert np.isfinite(h.score)


def _beep_then_hiss(path, sr=16000):
    """2 s of a loud 2 kHz beep, then 4 s of faint noise: most windows are the quiet tail."""
    return write(path, np.concatenate([tone(2000, 2.0, sr), noise(4.0, sr, amp=0.01, seed=5)]), sr)


def test_like_pools_windows_by_power_indexed_or_not(known, tmp_path):
    import shutil
    import sqlite3

    import soundfile as sf

    from earmark.engine.search import _like_vector
    from earmark.engine.window_pooling import pool_windows, window_power
    from earmark.engine.windows import iter_windows
    from earmark.index import db

    lib, d = known
    indexed = _beep_then_hiss(d / "beep_then_hiss.wav")
    lib.index([d])
    outside = tmp_path / "elsewhere" / "copy.wav"
    outside.parent.mkdir()
    shutil.copy(indexed, outside)

    enc = lib.encoder
    audio, _ = sf.read(indexed, dtype="float32")  # as written: 16-bit PCM
    wins = np.stack([w.samples for w in iter_windows([audio], 16000, enc.window_samples, lib.hop_samples)])
    emb = enc.embed_audio(wins)
    by_power = pool_windows(emb, window_power(wins))
    plain = pool_windows(emb, pooling="mean")
    assert float(by_power @ plain) < 0.99  # the rule matters for this file

    con = sqlite3.connect(lib.path / db.DB_NAME)
    stored = [r[0] for r in con.execute(
        "SELECT power FROM segments JOIN sounds ON sounds.id = segments.sound_id "
        "WHERE sounds.path = 'beep_then_hiss.wav' ORDER BY segments.id")]
    np.testing.assert_allclose(stored, window_power(wins), rtol=1e-6)
    np.testing.assert_allclose(_like_vector(lib, str(indexed), None, None), by_power, atol=1e-6)
    np.testing.assert_allclose(_like_vector(lib, str(outside), None, None), by_power, atol=1e-6)

    # rows indexed before the store kept window power: the file is embedded from its audio
    con.execute("UPDATE segments SET power = NULL")
    con.commit()
    con.close()
    np.testing.assert_allclose(_like_vector(lib, str(indexed), None, None), by_power, atol=1e-6)

    # the loud beep, not the faint tail, is what this example sounds like
    order = paths(lib.search(f"like:{outside}", ranking="dense", k=10))
    assert order.index("beep.wav") < order.index("white_noise.wav")


def test_pool_windows_rejects_what_it_cannot_pool():
    from earmark.engine.window_pooling import pool_windows

    emb = np.eye(3, dtype=np.float32)
    with pytest.raises(ValueError, match="one power value per window"):
        pool_windows(emb)
    with pytest.raises(ValueError, match="pooling must be one of"):
        pool_windows(emb, np.ones(3), pooling="max")
    with pytest.raises(ValueError, match="non-empty"):
        pool_windows(np.zeros((0, 3)), np.zeros(0))
    # all windows silent: no weights, the plain mean
    np.testing.assert_allclose(pool_windows(emb, np.zeros(3)), pool_windows(emb, pooling="mean"))


def test_embed_and_pool_batches_a_stream_as_one_pool(fake_encoder):
    from earmark.engine.window_pooling import embed_and_pool, pool_windows, window_power

    n = fake_encoder.window_samples
    wins = [tone(200 * (i + 1), 1.0, 16000, amp=0.05 * (i + 1))[:n] for i in range(7)]
    whole = pool_windows(fake_encoder.embed_audio(np.stack(wins)), window_power(np.stack(wins)))
    np.testing.assert_allclose(embed_and_pool(fake_encoder, iter(wins), batch=3), whole, atol=1e-6)
    assert embed_and_pool(fake_encoder, iter([])) is None


def _pooled_by_hand(lib, path: str, q: np.ndarray) -> float:
    """⟨q, the file's stored windows pooled by power⟩, read straight from the SQLite file."""
    import sqlite3

    from earmark.index import db

    con = sqlite3.connect(lib.path / db.DB_NAME)
    rows = con.execute("SELECT embedding, power FROM segments JOIN sounds ON sounds.id = segments.sound_id "
                       "WHERE sounds.path = ? ORDER BY segments.id", (path,)).fetchall()
    con.close()
    emb = np.stack([np.frombuffer(e, np.float32) for e, _ in rows]).astype(np.float64)
    v = np.array([p for _, p in rows]) @ emb
    return float(v @ q / np.linalg.norm(v))


def test_dense_ranks_sounds_by_their_pooled_windows(known):
    """Dense ranking's default aggregate scores each sound's windows pooled by power, so a file
    that is one third beep no longer nearly ties, as its best window does, with pure noise."""
    lib, _ = known
    q, _ = lib.encoder.embed_query("noise")
    pooled = lib.search("noise")
    assert pooled.query.aggregate == "pooled" and not pooled.query.notes
    for h in pooled.hits:
        assert math.isclose(h.score, _pooled_by_hand(lib, h.path, q), rel_tol=1e-5, abs_tol=1e-6), h.path
    best = {h.path: h for h in lib.search("noise", aggregate="max").hits}
    assert abs(best["white_noise.wav"].score - best["sub/beep_then_noise.wav"].score) < 0.02
    mixed = next(h for h in pooled.hits if h.path == "sub/beep_then_noise.wav")
    assert paths(pooled)[0] == "white_noise.wav" and mixed.score < pooled.hits[0].score - 0.1
    # the reported window is still the sound's best one
    assert (mixed.start, mixed.end) == (best["sub/beep_then_noise.wav"].start, best["sub/beep_then_noise.wav"].end)
    assert lib.search("noise", ranking="fusion").query.aggregate == "max"


@pytest.mark.parametrize("ranking", ["fusion", "concept"])
def test_pooled_aggregate_needs_dense_ranking(known, ranking):
    lib, _ = known
    with pytest.raises(QuerySyntaxError, match="needs ranking 'dense'") as exc:
        lib.search("a high beep", ranking=ranking, aggregate="pooled")
    assert exc.value.field == "aggregate"


def test_pooled_ranks_windows_of_unknown_power_by_the_best_one_and_says_so(known):
    import sqlite3

    from earmark.index import db

    lib, _ = known
    con = sqlite3.connect(lib.path / db.DB_NAME)
    con.execute("UPDATE segments SET power = NULL WHERE sound_id = (SELECT id FROM sounds WHERE path = 'white_noise.wav')")
    con.commit()
    con.close()
    res = lib.search("noise", k=10)
    best = {h.path: h.score for h in lib.search("noise", aggregate="max", k=10).hits}
    noise_hit = next(h for h in res.hits if h.path == "white_noise.wav")
    assert noise_hit.score == best["white_noise.wav"]
    assert res.query.notes == ["1 candidate sound(s) indexed before window power was stored (migration 0007) "
                               "are ranked by their best window"]


def test_pooled_hits_are_explained_as_the_sound_they_were_ranked_as(known):
    """Under "pooled" a sound of several windows is scored, coded and explained as its pooled
    vector (decomposed at query time); under "max" as its best window."""
    import sqlite3

    from earmark.engine.query.explain import explain_dense
    from earmark.index import db

    lib, _ = known
    q, _ = lib.encoder.embed_query("noise")
    res = lib.search("noise")
    mixed = next(h for h in res.hits if h.path == "sub/beep_then_noise.wav")
    assert mixed.explains == "sound" and mixed.dense_score == mixed.score
    con = sqlite3.connect(lib.path / db.DB_NAME)
    rows = con.execute("SELECT embedding, power FROM segments JOIN sounds ON sounds.id = segments.sound_id "
                       "WHERE sounds.path = 'sub/beep_then_noise.wav' ORDER BY segments.id").fetchall()
    con.close()
    assert len(rows) > 1
    emb = np.stack([np.frombuffer(e, np.float32) for e, _ in rows]).astype(np.float64)
    v = np.array([p for _, p in rows]) @ emb
    v = (v / np.linalg.norm(v)).astype(np.float32)
    book = lib.active_codebook()
    ref = book.decompose(v[None]).weights.tocsr()
    # the hit's code is the pooled vector's: the same recomposition (the fake encoder has concepts
    # with identical embeddings, between which the lasso may split a weight either way)
    index = {c: i for i, c in enumerate(book.concepts)}
    assert len(mixed.top_concepts) < 8  # the whole code
    ids = np.array([index[c.concept] for c in mixed.top_concepts])
    w = np.array([c.weight for c in mixed.top_concepts])
    atoms = np.asarray(book.dictionary.atoms, np.float64)
    np.testing.assert_allclose(w @ atoms[ids], ref.data @ atoms[ref.indices], atol=1e-5)
    dense = explain_dense(q, mixed.score, ids, w, book.dictionary, book.concepts)
    np.testing.assert_allclose(sorted(c.contribution for c in mixed.dense_contributions),
                               sorted(c.contribution for c in dense.contributions), atol=1e-6)
    assert math.isclose(sum(c.contribution for c in mixed.contributions), mixed.concept_score, rel_tol=1e-5, abs_tol=1e-6)
    best = next(h for h in lib.search("noise", aggregate="max").hits if h.path == "sub/beep_then_noise.wav")
    assert best.explains == "window" and best.dense_score == best.score
    assert {c.concept for c in best.top_concepts} != {c.concept for c in mixed.top_concepts}
