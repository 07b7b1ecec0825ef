"""Exemplar support: a query's training sounds score a sound by its nearest few (search, bench classify)."""
from __future__ import annotations

import numpy as np
import pytest
import torch

from bench_fixtures import HUM_HZ, write_esc50
from conftest import TEST_VOCAB, tone, write_known_sounds
from fake_encoder import FakeEncoder
from earmark.engine.bench.datasets import read_dataset
from earmark.engine.bench.run import run_classify
from earmark.engine.encoders.base import l2_normalise
from earmark.engine.encoders.exemplar_support import QuerySupport, hubness, support_matrix
from earmark.engine.encoders.sound_prototypes import SoundPrototypes


def unit_rows(*rows) -> np.ndarray:
    return l2_normalise(np.asarray(rows, np.float32))


def test_scores_average_the_m_nearest_exemplars_times_the_weight() -> None:
    ex = unit_rows([1, 0, 0], [0, 1, 0], [0.6, 0.8, 0])
    sup = QuerySupport(ex, ["a", "b", "c"], top_m=2, weight=3.0)
    v = unit_rows([1, 0, 0], [0, 0, 1])
    idx, sims = sup.nearest(v)
    assert idx[0].tolist() == [0, 2] and sims[0] == pytest.approx([1.0, 0.6])  # nearest first
    assert sup.scores(v) == pytest.approx([3.0 * 0.8, 0.0])
    # m above the support's size averages all of it; no vectors, no scores
    assert QuerySupport(ex, ["a", "b", "c"], top_m=10, weight=1.0).scores(v[:1]) == pytest.approx([(1 + 0 + 0.6) / 3])
    assert sup.scores(np.zeros((0, 3), np.float32)).shape == (0,)
    m = support_matrix(v, [sup, None])
    assert m.shape == (2, 2) and m[:, 1].tolist() == [0.0, 0.0] and m[:, 0] == pytest.approx(sup.scores(v))


def test_offsets_pick_and_score_the_exemplars_by_cosine_less_offset() -> None:
    ex = unit_rows([1, 0, 0], [0.6, 0.8, 0], [0, 1, 0])
    v = unit_rows([1, 0, 0])
    plain = QuerySupport(ex, ["a", "b", "c"], top_m=1, weight=2.0)
    assert plain.nearest(v)[0][0].tolist() == [0] and plain.scores(v) == pytest.approx([2.0])
    # exemplar "a" is crowded (offset 0.5), "b" distinctive (0): 1 - 0.5 < 0.6 - 0, so "b" is the one
    # behind the term, which is reported with its own cosine and scored less its offset
    hub = QuerySupport(ex, ["a", "b", "c"], top_m=1, weight=2.0, offsets=np.array([0.5, 0.0, 0.0], np.float32))
    idx, sims = hub.nearest(v)
    assert idx[0].tolist() == [1] and sims[0] == pytest.approx([0.6])
    assert hub.scores(v) == pytest.approx([2.0 * 0.6])
    two = QuerySupport(ex, ["a", "b", "c"], top_m=2, weight=1.0, offsets=np.array([0.5, 0.0, 0.1], np.float32))
    assert two.nearest(v)[0][0].tolist() == [1, 0] and two.scores(v) == pytest.approx([(0.6 + 0.5) / 2])


def test_hubness_is_the_mean_cosine_with_the_k_nearest_other_exemplars() -> None:
    ex = unit_rows([1, 0, 0], [0.8, 0.6, 0], [0.6, 0.8, 0], [0, 0, 1])
    h = hubness(ex, 2)
    sims = ex @ ex.T
    for i in range(4):
        others = np.sort(np.delete(sims[i], i))[::-1]
        assert h[i] == pytest.approx(others[:2].mean(), abs=1e-6)
    assert h[3] < h[1]  # the lone exemplar is the least crowded
    assert hubness(ex, 10) == pytest.approx(np.array([np.delete(sims[i], i).mean() for i in range(4)]), abs=1e-6)
    assert hubness(ex[:1], 5).tolist() == [0.0]
    # blocks of 1,024 give what one matrix gives
    rng = np.random.default_rng(0)
    big = unit_rows(*rng.normal(size=(1500, 8)))
    full = big @ big.T
    np.fill_diagonal(full, -np.inf)
    assert hubness(big, 7) == pytest.approx(np.sort(full, axis=1)[:, -7:].mean(1), abs=1e-5)


def prototypes(**kw) -> SoundPrototypes:
    """Two labels, keys along axes 0 and 1 of a 4-d sentence space; three exemplars in 3-d."""
    keys = torch.eye(4)[:2]
    protos = torch.nn.functional.normalize(torch.tensor([[1.0, 0, 0], [0, 1.0, 0]]), dim=-1)
    ex = torch.nn.functional.normalize(torch.tensor([[1.0, 0.1, 0], [1.0, -0.1, 0], [0, 1.0, 0]]), dim=-1)
    fields = dict(exemplars=ex, exemplar_labels=torch.tensor([0, 0, 1]), exemplar_min_similarity=0.6,
                  exemplar_top_m=2, exemplar_weight=2.0)
    fields.update(kw)
    return SoundPrototypes(keys, protos, ["rain", "a dog barking"], 0.5, 10, 4.0, 0.6, True, **fields)


def test_support_is_every_exemplar_of_the_labels_past_the_gate() -> None:
    p = prototypes()
    rain, both, neither = p.support(torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0], [0, 0, 1.0, 0]]))
    assert rain.labels == ["rain", "rain"] and rain.vectors.shape == (2, 3)
    assert rain.top_m == 2 and rain.weight == 2.0
    assert sorted(both.labels) == ["a dog barking", "rain", "rain"]  # cos 0.71 with each key
    assert neither is None
    off = prototypes(exemplar_weight=0.0)
    assert not off.has_support and off.support(torch.tensor([[1.0, 0, 0, 0]])) == [None]


def test_a_query_reaching_no_label_falls_back_to_the_nearest_one_above_the_fallback() -> None:
    # cosine 0.55 with "rain"'s key, 0.3 with the other: under the gate (0.6), over the fallback
    near = torch.tensor([[0.55, 0.3, 0.779, 0.0]])
    far = torch.tensor([[0.45, 0.3, 0.841, 0.0]])
    assert prototypes().support(near) == [None]  # no fallback by default
    fallback = prototypes(exemplar_fallback_similarity=0.5)
    (sup,) = fallback.support(near)
    assert sup is not None and sup.labels == ["rain", "rain"]
    assert fallback.support(far) == [None]
    # a query that reaches a label at the gate takes every such label, as without the fallback
    (both,) = fallback.support(torch.tensor([[1.0, 1.0, 0, 0]]))
    assert sorted(both.labels) == ["a dog barking", "rain", "rain"]


def test_the_support_carries_each_chosen_exemplars_hubness_times_its_weight() -> None:
    hub = torch.tensor([0.2, 0.4, 0.1])
    p = prototypes(exemplar_hubness=hub, exemplar_hub_weight=1.5, exemplar_hub_k=2)
    rain, both = p.support(torch.tensor([[1.0, 0, 0, 0], [1.0, 1.0, 0, 0]]))
    assert rain.offsets == pytest.approx([0.3, 0.6])
    assert sorted(both.offsets.tolist()) == pytest.approx([0.15, 0.3, 0.6])
    assert prototypes(exemplar_hubness=hub).support(torch.tensor([[1.0, 0, 0, 0]]))[0].offsets is None  # weight 0
    back = SoundPrototypes.from_payload(p.to_payload())
    assert back.exemplar_hub_weight == 1.5 and back.exemplar_hub_k == 2 and torch.allclose(back.exemplar_hubness, hub)
    assert SoundPrototypes.from_payload(prototypes().to_payload()).exemplar_hubness is None  # v12/v13 payloads


def test_exemplars_round_trip_through_the_checkpoint_payload_and_old_payloads_have_none() -> None:
    p = prototypes()
    d = p.to_payload()
    assert d["exemplars"]["vectors"].dtype == torch.float16  # half the bytes on disk
    back = SoundPrototypes.from_payload(d)
    assert back.exemplar_labels.tolist() == [0, 0, 1] and back.exemplar_top_m == 2 and back.exemplar_weight == 2.0
    assert SoundPrototypes.from_payload(prototypes(exemplar_fallback_similarity=0.5).to_payload()).exemplar_fallback_similarity == 0.5
    assert torch.allclose(back.exemplars, p.exemplars, atol=1e-3)
    del d["exemplars"]
    old = SoundPrototypes.from_payload(d)
    assert old.exemplars is None and not old.has_support


@pytest.mark.parametrize("bad, message", [
    ({"exemplar_labels": None}, "come together"),
    ({"exemplar_labels": torch.tensor([0, 0, 2])}, "index labels"),
    ({"exemplar_labels": torch.tensor([0, 1])}, "one label index each"),
    ({"exemplar_top_m": 0}, "exemplar_top_m"),
    ({"exemplar_min_similarity": 1.5}, "exemplar_min_similarity"),
    ({"exemplar_fallback_similarity": -2.0}, "exemplar_fallback_similarity"),
    ({"exemplar_hubness": torch.zeros(2)}, "one value per exemplar"),
    ({"exemplar_hub_weight": 1.0}, "exemplar_hub_weight"),
    ({"exemplar_hubness": torch.zeros(3), "exemplar_hub_weight": -1.0}, "exemplar_hub_weight"),
    ({"exemplars": None, "exemplar_labels": None, "exemplar_hubness": torch.zeros(3)}, "needs exemplars"),
])
def test_malformed_exemplars_are_refused(bad, message) -> None:
    with pytest.raises(ValueError, match=message):
        prototypes(**bad)


class SupportedFakeEncoder(FakeEncoder):
    """FakeEncoder whose query "a thing" names one training sound: a 90 Hz hum."""

    def query_support(self, texts):
        hum = self.embed_audio(tone(90, 1.0, self.sample_rate)[None, :])
        return [QuerySupport(hum, ["a hum"], 3, 2.0) if t == "a thing" else None for t in texts]


@pytest.fixture
def supported(tmp_path):
    from earmark.engine.library import Library

    lib = Library.init(tmp_path / "lib", encoder=SupportedFakeEncoder(), vocabulary=str(TEST_VOCAB))
    lib.index([write_known_sounds(tmp_path / "known")])
    return lib


@pytest.mark.parametrize("aggregate", ["pooled", "max"])
def test_search_ranks_by_cosine_plus_support_and_finds_what_only_the_support_reaches(supported, aggregate) -> None:
    plain = supported.search("a different thing", k=5, aggregate=aggregate)
    assert plain.query.support == [] and all(h.support_score is None for h in plain.hits)
    res = supported.search("a thing", k=1, aggregate=aggregate)
    # "a thing" embeds to an arbitrary vector; the hum is found only through its support
    assert [h.path for h in res.hits] == ["hum.flac"]
    hit = res.hits[0]
    assert hit.score == pytest.approx(hit.dense_score + hit.support_score, abs=1e-5)
    assert hit.support_score == pytest.approx(2.0 * hit.support_examples[0].similarity, abs=1e-5)
    assert hit.support_examples[0].label == "a hum" and hit.support_examples[0].similarity > 0.9
    assert [(x.label, x.sounds) for x in res.query.support] == [("a hum", 1)]


def test_concept_ranking_ignores_the_support(supported) -> None:
    res = supported.search("a thing", k=5, ranking="concept")
    assert res.query.support == [] and all(h.support_score is None for h in res.hits)


def test_bench_classify_adds_the_support_unless_told_not_to(tmp_path) -> None:
    class MisleadingSupport(FakeEncoder):
        """Names the hums as the exemplars of "beep": hum clips then score highest for beep."""

        def query_support(self, texts):
            hums = self.embed_audio(np.stack([tone(hz, 1.0, self.sample_rate) for hz in HUM_HZ]))
            return [QuerySupport(hums, ["hum"] * len(HUM_HZ), 1, 10.0) if t == "beep" else None for t in texts]

    ds = read_dataset(write_esc50(tmp_path / "esc"))
    kw = dict(vocabularies=(), cache_dir=tmp_path / "cache")
    with_support = run_classify(ds, MisleadingSupport(), **kw)
    without = run_classify(ds, MisleadingSupport(), exemplars=False, **kw)
    assert without.rows[0].metrics["accuracy"] == 1.0 and without.provenance["exemplar_support"] == 0
    assert with_support.provenance["exemplar_support"] == 1
    assert with_support.rows[0].per_class["hum"] == 0.0  # every hum clip called beep
