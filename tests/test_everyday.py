"""Everyday-category mapping and the linear-head training option (engine/training/everyday.py, train.py)."""
import numpy as np
import pytest
import torch

from earmark.engine.encoders.embedded_model import EmbeddedClap, ModelConfig
from earmark.engine.training import captions as C
from earmark.engine.training.everyday import CATEGORIES, WORDINGS, category_of
from earmark.engine.training.features import FeatureSet
from earmark.engine.training.train import TrainConfig, fit


def test_category_rules_order_and_exclusions():
    assert len(CATEGORIES) == 27
    assert category_of("machine gun fire") == "gunshot"  # not fire
    assert category_of("fire crackling") == "fire crackling"
    assert category_of("a cowbell") is None  # not a cow
    assert category_of("a cow mooing") == "cow"
    assert category_of("footsteps on gravel") == "footsteps"
    assert category_of("a train") is None  # "rain" only as a word
    assert category_of("rain and thunder") == "rain"


def _tiny_set(n=64):
    rng = np.random.default_rng(0)
    labels = ["a dog barking" if i % 2 else "rain" for i in range(n)]
    feats = rng.standard_normal((n, 512)).astype(np.float32) + np.array([[1.0 if i % 2 else -1.0] for i in range(n)], np.float32)
    fs = FeatureSet(feats, np.arange(n), -np.ones(n, np.int64), np.zeros(n, np.int64), labels)
    text = {c: rng.standard_normal(384).astype(np.float32) for lab in set(labels) for c in C.captions_for(lab)}
    return fs, text


def _one_window_corpus(labels: list[str], packages: list[str], feats: np.ndarray):
    """Corpus items and a FeatureSet with one plain window per sound (sound i = row i)."""
    from earmark.engine.training.corpus import CorpusItem

    items = [CorpusItem(f"/x/{i}.wav", p, "CC0", lab, "keyword", [lab])
             for i, (p, lab) in enumerate(zip(packages, labels))]
    n = len(labels)
    return items, FeatureSet(np.asarray(feats, np.float32), np.arange(n), -np.ones(n, np.int64), np.zeros(n, np.int64),
                             list(labels))


def test_every_wording_types_each_category_once_in_category_order():
    assert WORDINGS["stand-in"] == tuple(CATEGORIES)
    for name, typed in WORDINGS.items():
        assert len(typed) == len(CATEGORIES) == len(set(typed)), name
        assert all(q.strip() == q and q for q in typed), name


def test_linear_heads_keep_residual_zero_and_learn():
    fs, text = _tiny_set()
    torch.manual_seed(0)
    model = EmbeddedClap(ModelConfig())
    before = model.text_proj.linear2.weight.clone()
    cfg = TrainConfig(epochs=30, batch_size=16, residual_heads=False, threads=1, package_adversary_weight=0.0)
    losses = fit(model, fs, np.arange(len(fs.labels)), text, cfg, progress=False)
    for head in (model.audio.proj, model.text_proj):
        assert torch.count_nonzero(head.linear3.weight) == 0 and torch.count_nonzero(head.linear3.bias) == 0
    assert torch.equal(model.text_proj.linear2.weight, before)  # frozen
    assert np.mean(losses[-10:]) < np.mean(losses[:10])


def test_sound_embeddings_average_each_sounds_windows():
    from earmark.engine.training.train import sound_embeddings

    fs, _ = _tiny_set(8)
    fs.item[:] = [3, 3, 1, 1, 1, 5, 3, 5]  # windows of three sounds, interleaved
    model = EmbeddedClap(ModelConfig()).eval()
    ids, audio = sound_embeddings(model, fs, np.arange(8))
    assert ids == [1, 3, 5]
    emb = model.project_audio_features(torch.from_numpy(fs.features)).detach().numpy()
    want = emb[[0, 1, 6]].mean(0)
    np.testing.assert_allclose(audio[1], want / np.linalg.norm(want), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(np.linalg.norm(audio, axis=1), 1.0, rtol=1e-5)


def test_model_card_table_shows_the_prompt_choice_not_made(tmp_path):
    """The validation table puts the unchosen prompt setting beside the shipped one, whichever it was."""
    import json

    from earmark.engine.training.model_card import metrics_table

    def m(x: float) -> dict:
        return {k: x for k in ("t2a_r1", "t2a_r5", "t2a_r10", "t2a_map10", "a2t_r1", "zero_shot_top1")} | {
            "n_sounds": 10, "n_categories": 3}

    for ensemble, other in ((False, "with prompt ensembling"), (True, "without prompt ensembling")):
        v = {"model": m(0.5), "model_without_prompt_ensemble": m(0.5 if not ensemble else 0.2),
             "model_with_prompt_ensemble": m(0.5 if ensemble else 0.2), "model_without_sound_prototypes": m(0.3),
             "baseline_untrained_projection": m(0.1), "chance": m(0.05), "val_packages": ["p"]}
        path = tmp_path / "metrics.json"
        path.write_text(json.dumps({"validation": v, "prompt_ensemble": ensemble}))
        table = metrics_table(path)
        head = table.splitlines()[0]
        assert other in head and "without sound prototypes" in head
        assert "| zero-shot top-1 | 0.500 | 0.300 | 0.200 | 0.100 | 0.050 |" in table
        assert f"prompt ensembling at query time: {'on' if ensemble else 'off'} (chosen on this split)" in table
        # since v11 the recipe may fix the choice; the table says so
        path.write_text(json.dumps({"validation": v, "prompt_ensemble": ensemble,
                                    "config": {"prompt_ensemble": "on" if ensemble else "off"}}))
        assert f"prompt ensembling at query time: {'on' if ensemble else 'off'} (set by the recipe)" in metrics_table(path)


def test_the_prompt_ensembling_setting_is_checked():
    assert TrainConfig().prompt_ensemble == "on"
    with pytest.raises(ValueError, match="prompt_ensemble"):
        TrainConfig(prompt_ensemble=True)  # a bool from before v11 is refused, not read as "on"


def test_category_centroids_use_only_the_given_packages_and_score_the_ceiling():
    """Centroids come from the training packages' sounds alone; a held-out package whose sounds lie
    near their category's centroid scores 1.0, one whose sounds were swapped scores 0.0."""
    from earmark.engine.training.everyday import RawFeatures, category_centroids, zero_shot_fold

    rng = np.random.default_rng(1)
    labels = ["rain", "a dog barking"] * 4 + ["rain", "a dog barking"] * 2  # 8 training + 4 held-out sounds
    packages = ["train-pkg"] * 8 + ["held-pkg"] * 4
    direction = {"rain": np.eye(512)[0], "a dog barking": np.eye(512)[1]}
    feats = np.stack([3 * direction[lab] + 0.1 * rng.standard_normal(512) for lab in labels])
    items, fs = _one_window_corpus(labels, packages, feats)
    raw = RawFeatures()
    cent = category_centroids(raw, fs, items, {"train-pkg"})
    cats = list(CATEGORIES)
    assert cent.shape == (27, 512)
    assert np.count_nonzero(np.linalg.norm(cent, axis=1)) == 2  # only rain and dog barking have sounds
    np.testing.assert_allclose(np.linalg.norm(cent[cats.index("rain")]), 1.0, rtol=1e-5)
    held = [8, 9, 10, 11]
    assert zero_shot_fold(raw, fs, items, held, cent).all()
    fs.features[8:] = fs.features[8:][[1, 0, 3, 2]]  # held-out rain now sounds like the dogs and back
    np.testing.assert_array_equal(category_centroids(raw, fs, items, {"train-pkg"}), cent)  # held-out never used
    assert not zero_shot_fold(raw, fs, items, held, cent).any()


def test_confusions_say_what_each_category_was_called_instead():
    """Swapped held-out sounds: predictions name the other category; `confusions` lists, per true
    category, the wrong calls by frequency and leaves out categories with no sounds."""
    from earmark.engine.training.everyday import RawFeatures, category_centroids, confusions, zero_shot_predictions

    rng = np.random.default_rng(2)
    labels = ["rain", "a dog barking"] * 4 + ["rain", "rain", "a dog barking"]
    packages = ["train-pkg"] * 8 + ["held-pkg"] * 3
    direction = {"rain": np.eye(512)[0], "a dog barking": np.eye(512)[1]}
    feats = np.stack([3 * direction[lab] + 0.1 * rng.standard_normal(512) for lab in labels])
    feats[9] = 3 * direction["a dog barking"]  # the second held-out rain sounds like a dog
    items, fs = _one_window_corpus(labels, packages, feats)
    raw = RawFeatures()
    pred, truth = zero_shot_predictions(raw, fs, items, [8, 9, 10], category_centroids(raw, fs, items, {"train-pkg"}))
    assert truth.tolist() == ["rain", "rain", "dog barking"]
    assert pred.tolist() == ["rain", "dog barking", "dog barking"]
    table = confusions(pred, truth)
    assert table == {"rain": [("dog barking", 1)], "dog barking": []}


def test_neighbour_smoothing_lets_a_sound_borrow_its_library_neighbours_scores():
    """A held-out rain sound that leans towards "dog barking" sits beside two clear rain sounds of
    its library: plain scoring calls it a dog, smoothing over its nearest neighbour (itself left
    out, or it would only hear itself again) calls it rain, and a clear dog stays a dog."""
    from earmark.engine.training.everyday import (
        RawFeatures, category_centroids, neighbour_smoothed_predictions, zero_shot_predictions,
    )

    rng = np.random.default_rng(3)
    e = np.eye(512)
    labels = ["rain", "a dog barking"] * 4 + ["rain", "rain", "rain", "a dog barking"]
    packages = ["train-pkg"] * 8 + ["held-pkg"] * 4
    feats = np.stack([3 * e[0 if lab == "rain" else 1] + 0.1 * rng.standard_normal(512) for lab in labels])
    feats[8] = e[0] + 2 * e[2]  # the held-out library's recording chain: a shared offset e2
    feats[9] = e[0] + 2 * e[2] + 0.01 * e[3]
    feats[10] = 0.8 * e[0] + 0.9 * e[1] + 2 * e[2]  # rain that leans towards dog
    feats[11] = 3 * e[1]
    items, fs = _one_window_corpus(labels, packages, feats)
    raw = RawFeatures()
    cent = category_centroids(raw, fs, items, {"train-pkg"})
    held = [8, 9, 10, 11]
    plain, truth = zero_shot_predictions(raw, fs, items, held, cent)
    assert plain.tolist() == ["rain", "rain", "dog barking", "dog barking"]
    smoothed, truth_s = neighbour_smoothed_predictions(raw, fs, items, held, cent, held, k=1, alpha=1.0)
    assert truth_s.tolist() == truth.tolist() == ["rain", "rain", "rain", "dog barking"]
    assert smoothed.tolist() == ["rain", "rain", "rain", "dog barking"]


def test_library_centring_removes_a_shared_offset_of_the_held_out_library():
    """Every held-out sound shares an offset towards "rain" (its library's recording chain): plain
    scoring calls them all rain; centring by the mean of *all* the package's sounds, everyday or not,
    takes the offset away. The mean is the package's own, never the training packages'."""
    from earmark.engine.training.everyday import RawFeatures, library_mean, zero_shot_fold

    cats = list(CATEGORIES)
    rain, dog = np.eye(512)[0], np.eye(512)[1]
    labels = ["rain", "a dog barking", "a dog barking", "a dog barking", "menu click", "rain"]
    rows = [rain, dog, dog, dog, np.eye(512)[2]]
    feats = np.stack([0.6 * r + 3.0 * rain + 0.05 * np.eye(512)[3 + i] for i, r in enumerate(rows)] + [10 * dog])
    items, fs = _one_window_corpus(labels, ["held-pkg"] * 5 + ["train-pkg"], feats)  # the last sound is elsewhere
    feats = fs.features
    raw = RawFeatures()
    prompts = np.zeros((27, 512), np.float32)
    prompts[cats.index("rain")], prompts[cats.index("dog barking")] = rain, dog
    held = [0, 1, 2, 3]  # the menu click (no category) is part of the library, not of the test
    assert zero_shot_fold(raw, fs, items, held, prompts).tolist() == [True, False, False, False]
    mean = library_mean(raw, fs, items, "held-pkg")
    unit = feats[:5] / np.linalg.norm(feats[:5], axis=1, keepdims=True)
    np.testing.assert_allclose(mean, unit.mean(0), rtol=1e-5, atol=1e-6)  # all five sounds, not train-pkg's
    assert zero_shot_fold(raw, fs, items, held, prompts, centre=mean).all()


def test_supervised_ceiling_learns_from_the_training_packages_only():
    """A classifier trained on the training package's labelled sounds gets separable held-out sounds
    right (logistic regression and k-NN); relabelling the held-out sounds' truth is not seen by it."""
    import pytest

    from earmark.engine.training.everyday import RawFeatures, supervised_fold

    rng = np.random.default_rng(2)
    labels = ["rain", "a dog barking", "a menu click"] * 6 + ["rain", "a dog barking"] * 2
    direction = {"rain": np.eye(512)[0], "a dog barking": np.eye(512)[1], "a menu click": np.eye(512)[2]}
    feats = np.stack([direction[lab] + 0.2 * rng.standard_normal(512) / np.sqrt(512) for lab in labels])
    items, fs = _one_window_corpus(labels, ["train-pkg"] * 18 + ["held-pkg"] * 4, feats)
    held = [18, 19, 20, 21]
    for method in ("lr:1", "lr:10", "knn:3"):
        assert supervised_fold(RawFeatures(), fs, items, {"train-pkg"}, held, method).all(), method
    fs.features[18:] = fs.features[18:][[1, 0, 3, 2]]  # held-out rain now sounds like the dogs
    assert not supervised_fold(RawFeatures(), fs, items, {"train-pkg"}, held, "knn:3").any()
    with pytest.raises(ValueError, match="lr:C"):
        supervised_fold(RawFeatures(), fs, items, {"train-pkg"}, held, "svm:1")



def test_package_adversary_removes_what_only_names_the_package():
    """Sounds of two labels from four 'games', each game adding its own strong offset to the
    features: with domain confusion the heads' audio embeddings are far less separated by game,
    and the labels stay apart."""
    from earmark.engine.training.train import row_packages

    rng = np.random.default_rng(0)
    n = 128
    labels = ["a dog barking" if i % 2 else "rain" for i in range(n)]
    game = np.array([(i // 2) % 4 for i in range(n)])
    feats = 0.3 * rng.standard_normal((n, 512))
    feats[:, 0] += np.where(np.arange(n) % 2, 1.0, -1.0)  # the label
    feats[np.arange(n), 1 + game] += 3.0  # the game
    items, fs = _one_window_corpus(labels, [f"game{g}" for g in game], feats)
    assert row_packages(fs, items, np.arange(n)).tolist() == game.tolist()
    text = {c: rng.standard_normal(384).astype(np.float32) for lab in set(labels) for c in C.captions_for(lab)}
    game_spread, label_gap = {}, {}
    for weight in (0.0, 1.0):
        torch.manual_seed(0)
        model = EmbeddedClap(ModelConfig())
        cfg = TrainConfig(epochs=120, batch_size=16, threads=1, package_adversary_weight=weight)
        fit(model, fs, np.arange(n), text, cfg, progress=False, items=items)
        emb = model.project_audio_features(torch.from_numpy(fs.features)).detach().numpy()
        means = np.stack([emb[game == k].mean(0) for k in range(4)])
        game_spread[weight] = float(np.linalg.norm(means - means.mean(0), axis=1).mean())
        label_gap[weight] = float(np.linalg.norm(emb[1::2].mean(0) - emb[::2].mean(0)))
    assert game_spread[1.0] < 0.5 * game_spread[0.0], game_spread
    assert label_gap[1.0] > 0.5 * label_gap[0.0], label_gap


def test_label_package_mix_is_each_labels_share_per_package():
    from earmark.engine.training.train import label_package_mix

    gid = np.array([0, 0, 0, 1, 1, 2])
    packages = np.array([0, 1, 1, 2, -1, -1])  # label 2's only row is a mixture
    mix = label_package_mix(gid, packages, 3, 3)
    np.testing.assert_allclose(mix, [[1 / 3, 2 / 3, 0], [0, 0, 1], [1 / 3, 1 / 3, 1 / 3]], rtol=1e-6)


def test_label_conditional_confusion_keeps_labels_that_name_their_package():
    """Rain is heard in two games, dogs only in one and menu clicks only in the other, and each
    game adds its own offset. Uniform confusion also pushes dogs and clicks together, because
    telling them apart tells the game; conditioned on the label, only the game offset within
    rain is pushed out, and the two one-game labels stay further apart."""
    rng = np.random.default_rng(0)
    n = 192
    labels = ["rain", "a dog barking", "rain", "a menu click"] * (n // 4)
    game = np.array([0, 0, 1, 1] * (n // 4))
    feats = 0.3 * rng.standard_normal((n, 512))
    direction = {"rain": 0, "a dog barking": 1, "a menu click": 2}
    feats[np.arange(n), [direction[lab] for lab in labels]] += 1.0
    feats[np.arange(n), 3 + game] += 3.0  # the game
    items, fs = _one_window_corpus(labels, [f"game{g}" for g in game], feats)
    text = {c: rng.standard_normal(384).astype(np.float32) for lab in set(labels) for c in C.captions_for(lab)}
    rain = np.array([lab == "rain" for lab in labels])
    rain_spread, one_game_gap = {}, {}
    for name, weight, by_label in (("off", 0.0, False), ("uniform", 1.0, False), ("by label", 1.0, True)):
        torch.manual_seed(0)
        model = EmbeddedClap(ModelConfig())
        cfg = TrainConfig(epochs=120, batch_size=16, threads=1, package_adversary_weight=weight,
                          package_adversary_by_label=by_label)
        fit(model, fs, np.arange(n), text, cfg, progress=False, items=items)
        emb = model.project_audio_features(torch.from_numpy(fs.features)).detach().numpy()
        rain_spread[name] = float(np.linalg.norm(emb[rain & (game == 0)].mean(0) - emb[rain & (game == 1)].mean(0)))
        one_game_gap[name] = float(np.linalg.norm(emb[1::4].mean(0) - emb[3::4].mean(0)))
    assert rain_spread["by label"] < 0.5 * rain_spread["off"], rain_spread
    assert one_game_gap["by label"] > one_game_gap["uniform"], one_game_gap


def test_package_adversary_needs_the_corpus():
    import pytest

    fs, text = _tiny_set(16)
    with pytest.raises(ValueError, match="corpus items"):
        fit(EmbeddedClap(ModelConfig()), fs, np.arange(16), text,
            TrainConfig(epochs=1, batch_size=8, threads=1, package_adversary_weight=0.1), progress=False)
