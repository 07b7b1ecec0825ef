"""Query-time sound prototypes: the blend itself, and the embedded checkpoint that carries them."""
from __future__ import annotations

from pathlib import Path

import pytest
import torch
import torch.nn.functional as F

from earmark.engine.encoders.base import EncoderError
from earmark.engine.encoders.embedded import EmbeddedEncoder, shipped_weights_path
from earmark.engine.encoders.sound_prototypes import SoundPrototypes

torch.set_num_threads(2)


def _bank(weight: float = 1.0, top_k: int = 2, temperature: float = 0.1) -> SoundPrototypes:
    keys = F.normalize(torch.eye(3, 4), dim=-1)  # three labels on three sentence axes
    protos = torch.eye(3, 6)  # each label's audio on its own axis
    return SoundPrototypes(keys, protos, ["rain", "dog", "bell"], temperature, top_k, weight)


def test_blend_pulls_a_query_toward_the_prototype_of_its_nearest_label() -> None:
    bank = _bank()
    projected = F.normalize(torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]), dim=-1)  # off every prototype
    sentence = torch.tensor([[0.0, 1.0, 0.1, 0.0]])  # nearest key: "dog"
    out = bank.blend(sentence, projected)
    assert torch.allclose(out.norm(dim=-1), torch.ones(1))
    sims = out @ bank.prototypes.T
    assert int(sims.argmax()) == 1 and float(sims[0, 1]) > float(projected @ bank.prototypes[1])
    assert bank.nearest_labels(sentence)[0][0][0] == "dog"


def test_weight_zero_and_top_k_limit_what_is_borrowed() -> None:
    projected = F.normalize(torch.randn(2, 6), dim=-1)
    sentence = torch.randn(2, 4)
    assert torch.allclose(_bank(weight=0.0).blend(sentence, projected), projected, atol=1e-6)
    # top_k = 1 with a flat softmax still borrows from one label only.
    one = _bank(top_k=1, temperature=100.0)
    s = torch.tensor([[1.0, 0.9, 0.0, 0.0]])
    out = one.blend(s, torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]))
    assert torch.allclose(out, F.normalize(torch.tensor([[1.0, 0.0, 0.0, 0.0, 1.0, 0.0]]), dim=-1), atol=1e-6)
    three = _bank(top_k=3, temperature=100.0).blend(s, torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]]))
    assert (three[0, :3] > 0.1).all()  # all three labels borrowed, nearly equally
    assert [lab for lab, _ in one.nearest_labels(s)[0]] == ["rain"]


def test_bad_banks_are_refused() -> None:
    with pytest.raises(ValueError):
        SoundPrototypes(torch.zeros(3, 4), torch.zeros(2, 6), ["a", "b", "c"], 0.1, 2, 1.0)
    with pytest.raises(ValueError):
        SoundPrototypes(torch.zeros(3, 4), torch.zeros(3, 6), ["a"], 0.1, 2, 1.0)
    with pytest.raises(ValueError):
        SoundPrototypes(torch.zeros(3, 4), torch.zeros(3, 6), ["a", "b", "c"], 0.0, 2, 1.0)


def _rewrite(tmp_path: Path, edit) -> Path:
    payload = torch.load(shipped_weights_path(), map_location="cpu", weights_only=True)
    edit(payload)
    path = tmp_path / "embedded-clap.pt"
    torch.save(payload, path)
    return path


def test_the_checkpoint_bank_changes_text_embeddings_and_the_fingerprint(tmp_path: Path) -> None:
    shipped = EmbeddedEncoder.load(device="cpu")
    assert shipped.prototypes is not None, "the shipped weights carry sound prototypes"
    assert shipped.config()["sound_prototypes"]["labels"] == len(shipped.prototypes.labels)
    plain = EmbeddedEncoder.load(str(_rewrite(tmp_path, lambda p: p.pop("sound_prototypes"))), device="cpu")
    assert plain.prototypes is None and plain.fingerprint != shipped.fingerprint
    queries = ["sheep", "a door closing", "rain"]
    a, b = shipped.embed_text(queries), plain.embed_text(queries)
    assert a.shape == b.shape == (3, shipped.dim)
    assert ((a * b).sum(1) < 0.999).all()  # the bank moved every query
    # Exactly the documented blend of the plain embedding.
    # the sentence the checkpoint looks the keys up by: its prompts' mean, or (bare lookup) the query
    templates = ("{}",) if shipped.prototypes.looks_up_bare_text(shipped.prompt_ensemble) or not shipped.prompt_ensemble \
        else shipped.templates
    with torch.no_grad():
        sentences = torch.stack([shipped.text_encoder([t.format(q) for t in templates]).mean(0) for q in queries])
    expect = shipped.prototypes.blend(sentences, torch.from_numpy(b))
    assert torch.allclose(torch.from_numpy(a), expect, atol=1e-5)


def test_a_malformed_bank_names_the_file(tmp_path: Path) -> None:
    path = _rewrite(tmp_path, lambda p: p["sound_prototypes"].pop("keys"))
    with pytest.raises(EncoderError, match="sound_prototypes"):
        EmbeddedEncoder.load(str(path), device="cpu")


def test_the_gate_drops_labels_below_the_key_cosine_and_falls_back_to_the_head() -> None:
    keys = F.normalize(torch.eye(3, 4), dim=-1)
    protos = torch.eye(3, 6)
    gated = SoundPrototypes(keys, protos, ["rain", "dog", "bell"], 100.0, 3, 1.0, min_similarity=0.5)
    projected = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
    # cos to "rain" 0.8, to "dog" 0.6, to "bell" 0: the flat softmax (τ 100) would borrow all three
    s = torch.tensor([[0.8, 0.6, 0.0, 0.0]])
    out = gated.blend(s, projected)
    assert float(out[0, 2]) == 0.0 and float(out[0, 0]) > 0.3 and float(out[0, 1]) > 0.3
    assert [lab for lab, _ in gated.nearest_labels(s)[0]] == ["rain", "dog"]
    # a query no key reaches is the projected text alone, not NaN and not an arbitrary label
    far = torch.tensor([[0.0, 0.0, 0.0, 1.0]])
    assert torch.equal(gated.blend(far, projected), projected)
    assert gated.nearest_labels(far) == [[]]
    # the same bank without the gate borrows "bell" too
    open_bank = SoundPrototypes(keys, protos, ["rain", "dog", "bell"], 100.0, 3, 1.0)
    assert float(open_bank.blend(s, projected)[0, 2]) > 0.2
    with pytest.raises(ValueError, match="min_similarity"):
        SoundPrototypes(keys, protos, ["rain", "dog", "bell"], 0.1, 3, 1.0, min_similarity=1.5)


def test_the_gate_round_trips_and_old_payloads_have_none() -> None:
    bank = SoundPrototypes(F.normalize(torch.eye(3, 4), dim=-1), torch.eye(3, 6), ["a", "b", "c"], 0.2, 2, 2.0, 0.6)
    again = SoundPrototypes.from_payload(bank.to_payload())
    assert again.min_similarity == pytest.approx(0.6)
    old = bank.to_payload()
    del old["min_similarity"]  # written before the gate existed
    assert SoundPrototypes.from_payload(old).min_similarity == -1.0


def test_the_lookup_mode_round_trips_and_old_payloads_look_up_by_prompts() -> None:
    bank = SoundPrototypes(F.normalize(torch.eye(3, 4), dim=-1), torch.eye(3, 6), ["a", "b", "c"], 0.2, 2, 2.0, 0.6,
                           bare_lookup=True)
    assert SoundPrototypes.from_payload(bank.to_payload()).bare_lookup is True
    old = bank.to_payload()
    del old["bare_lookup"]  # written before the field existed
    assert SoundPrototypes.from_payload(old).bare_lookup is False


def _aliased(alias_gate: float = 0.8, **kw) -> SoundPrototypes:
    """Labels on sentence axes 0-2; "dog" also named by a word on axis 3 (its alias key)."""
    return SoundPrototypes(F.normalize(torch.eye(3, 4), dim=-1), torch.eye(3, 6), ["rain", "dog", "bell"], 1.0, 3, 1.0,
                           min_similarity=0.4, alias_keys=torch.tensor([[0.0, 0.0, 0.0, 1.0]]),
                           alias_labels=torch.tensor([1]), alias_words=["pup"], alias_min_similarity=alias_gate, **kw)


def test_an_alias_word_lets_a_query_reach_a_label_its_key_does_not() -> None:
    projected = torch.tensor([[0.0, 0.0, 0.0, 0.0, 1.0, 0.0]])
    word = torch.tensor([[0.0, 0.0, 0.0, 1.0]])  # the alias itself: cosine 0 with every label's key
    bank = _aliased()
    assert [lab for lab, _ in bank.nearest_labels(word)[0]] == ["dog"]
    assert float(bank.blend(word, projected)[0, 1]) > 0.5
    # the same bank with the alias gate above the query's alias cosine borrows nothing
    assert bank.nearest_labels(torch.tensor([[0.0, 0.0, 0.8, 0.6]]))[0] == [("bell", 1.0)]
    assert _aliased(alias_gate=1.0).nearest_labels(torch.tensor([[0.0, 0.0, 0.0, 0.99]]))[0] == [("dog", 1.0)]
    no_alias = SoundPrototypes(bank.keys, bank.prototypes, bank.labels, 1.0, 3, 1.0, min_similarity=0.4)
    assert no_alias.nearest_labels(word) == [[]]
    assert torch.equal(no_alias.blend(word, projected), projected)


def test_an_alias_decides_which_labels_blend_not_how_much() -> None:
    # cos 0.5 with "rain"'s key (passes the 0.4 gate); "dog" reached only through its alias (0.87)
    s = torch.tensor([[0.5, 0.0, 0.0, 0.866]])
    weights = dict(_aliased().nearest_labels(s)[0])
    assert set(weights) == {"rain", "dog"}
    # the weights are the softmax of the keys' cosines (0.5 and 0 at τ 1), not of the alias's 0.87
    assert weights["rain"] == pytest.approx(torch.softmax(torch.tensor([0.5, 0.0]), 0)[0].item(), abs=1e-5)


def test_an_alias_reaches_the_labels_exemplars() -> None:
    ex = torch.eye(4, 6)  # one training sound per label, and a second "dog"
    bank = _aliased(exemplars=ex, exemplar_labels=torch.tensor([0, 1, 2, 1]), exemplar_min_similarity=0.6,
                    exemplar_top_m=1, exemplar_weight=1.0)
    sup = bank.support(torch.tensor([[0.0, 0.0, 0.0, 1.0]]))[0]
    assert sup is not None and sup.labels == ["dog", "dog"]
    assert bank.support(torch.tensor([[0.0, 0.0, 0.8, 0.6]]))[0].labels == ["bell"]


def test_aliases_round_trip_and_malformed_ones_are_refused() -> None:
    bank = _aliased(alias_gate=0.85)
    again = SoundPrototypes.from_payload(bank.to_payload())
    assert torch.equal(again.alias_keys, bank.alias_keys) and again.alias_labels.tolist() == [1]
    assert again.alias_words == ["pup"] and again.alias_min_similarity == pytest.approx(0.85)
    assert SoundPrototypes.from_payload(_bank().to_payload()).alias_keys is None  # v12 and before: none
    base = dict(keys=bank.keys, prototypes=bank.prototypes, labels=bank.labels, temperature=1.0, top_k=3, weight=1.0)
    for bad, match in ((dict(alias_keys=torch.zeros(1, 4)), "come together"),
                       (dict(alias_keys=torch.zeros(1, 5), alias_labels=torch.tensor([0])), r"\(A, d\)"),
                       (dict(alias_keys=torch.zeros(1, 4), alias_labels=torch.tensor([3])), "index labels"),
                       (dict(alias_keys=torch.zeros(1, 4), alias_labels=torch.tensor([0]), alias_words=["a", "b"]),
                        "one word"),
                       (dict(alias_keys=torch.zeros(1, 4), alias_labels=torch.tensor([0]), alias_min_similarity=2.0),
                        "alias_min_similarity")):
        with pytest.raises(ValueError, match=match):
            SoundPrototypes(**base, **bad)


def test_borrowed_labels_are_listed_heaviest_first_whatever_reached_them() -> None:
    # "dog" is reached through its alias (reach 0.87) but weighs less than "rain" (key cosine 0.5
    # against 0): the explanation lists by weight, not by the order the lookup ranked them in
    s = torch.tensor([[0.5, 0.0, 0.0, 0.866]])
    assert [lab for lab, _ in _aliased().nearest_labels(s)[0]] == ["rain", "dog"]
    assert [lab for lab, _ in _aliased().nearest_labels(s, n=1)[0]] == ["rain"]
