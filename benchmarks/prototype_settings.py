"""Query-time settings of the embedded encoder's sound prototypes, on the everyday stand-in and the demo library.

How v11's prompt ensembling, prototype lookup and τ were chosen (docs/model-card.md, v11). Two
measurements per setting, neither of which retrains anything for it (the settings act at query
time only):

* the everyday stand-in (leave-one-package-out, benchmarks/everyday_zero_shot.py): the shipped
  recipe's model is trained once per fold and data seed, then the 27 category prompts are embedded
  under every setting and each held-out sound classified; pooled top-1 per data seed;
* the demo library (tests/test_demo_queries.py's 28 queries on `earmark demo`'s sounds), on a
  trained checkpoint (``--demo-encoder``, default the shipped weights) with the setting swapped in:
  how many queries rank their sound first and in the top 3, and whether "speech" / "+speech" do.

The grid: prompts plain, or ensembled with the lookup by the bare query or by the templated
prompts' mean, × τ {0.2, 0.3, 0.5, 1.0} × gate {0.5, 0.55, 0.6, 0.7} × k {10, 20} × weight {2, 4, 8}
(288 settings), without exemplar support (v11's choice). ``--exemplars`` scores instead the
exemplar support (v12) at the recipe's own prototype settings: gate g_e {0.5, 0.55, 0.6, 0.65, 0.7}
× m {1, 2, 3, 5} × λ {0, 0.5, 1, 1.5, 2, 3} (λ 0: none), and also the validation split's zero-shot
top-1 and text→audio mAP@10 (the model `earmark train-encoder` measures, trained once). The rule:
of the settings that keep the demo test's bar (every answer in the top 3, >= 85 % first, the
speech queries first), the best mean over the data seeds.

``--aliases`` scores the alias keys (v13): none, or alias gate a_g {0.7, 0.75, 0.8, 0.85, 0.9}, each
with the categories typed in every wording of everyday.WORDINGS (the stand-in's names, one word
each, the issue's and ESC-50's words), and the validation split; ``--demo-encoder`` must then name
weights with alias keys (a v13 checkpoint).

``--hubness`` scores v14's two query-side changes: the labels' action words as alias keys or not
(label_words.action_words), × no hubness correction of the exemplar support or weight α {0.5, 1,
1.5, 2} × neighbours K {30, 100, 300} (exemplar_support.hubness), each in every wording, and the
validation split; ``--demo-encoder`` must name weights with exemplars and action words (v14).
Every grid holds the recipe's other settings at their current values.

    python benchmarks/prototype_settings.py [--exemplars | --aliases | --hubness] [--data-seed 0 --data-seed 1] [--demo-encoder SPEC] [--json OUT]

~4 min per data seed (five fold models) and ~4 min for the demo grid on 2 cores.
"""
from __future__ import annotations

import argparse
import dataclasses
import itertools
import json
import sys
import tempfile
from pathlib import Path

import numpy as np
import torch

from earmark.engine.demo import run_demo
from earmark.engine.library import Library
from earmark.engine.training.corpus import PROCEDURAL, build_corpus
from earmark.engine.training.everyday import CATEGORIES, WORDINGS, _plain_rows, category_of, folds
from earmark.engine.training.features import compute_features
from earmark.engine.training.label_words import label_words
from earmark.engine.encoders.exemplar_support import hubness, support_matrix
from earmark.engine.training.train import (
    TrainConfig, _new_model, aisfx_checkpoint, ensembled_text, label_support, measure, prompt_embeddings,
    sound_embeddings, text_embeddings, train_on,
)
from earmark.engine.user_cache import cache_root

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))
from test_demo_queries import QUERIES, SPEECH  # noqa: E402  (the demo test's own table)

LOOKUPS = {"plain": (False, True), "ensembled, bare lookup": (True, True), "ensembled, templated lookup": (True, False)}


@dataclasses.dataclass(frozen=True)
class Setting:
    """A query side: prompt ensembling on or off, and SoundPrototypes fields to replace."""

    name: str
    ensemble: bool
    fields: tuple[tuple[str, object], ...]
    wording: str = "stand-in"  # how the stand-in's categories are typed (everyday.WORDINGS)
    hub_k: int = 0  # > 0: the exemplars' hubness recomputed over this many neighbours (v14)
    action_words: bool = True  # False: the alias keys without the labels' action words (v14)

    def apply(self, protos):
        out = dataclasses.replace(protos, **dict(self.fields))
        if self.hub_k and out.exemplars is not None:
            out = dataclasses.replace(out, exemplar_hub_k=self.hub_k, exemplar_hubness=torch.from_numpy(
                hubness(out.exemplars.float().numpy(), self.hub_k)))
        if not self.action_words and out.alias_keys is not None:
            table = label_words(out.labels)
            keep = [i for i, (lab, w) in enumerate(zip(out.alias_labels.tolist(), out.alias_words))
                    if w in table.get(out.labels[lab], ())]
            out = dataclasses.replace(out, alias_keys=out.alias_keys[keep], alias_labels=out.alias_labels[keep],
                                      alias_words=[out.alias_words[i] for i in keep])
        return out


def lookup_grid() -> list[Setting]:
    """v11's grid: lookup × τ × gate × k × weight, no exemplar support."""
    return [Setting(f"{lookup}; τ {tau:g}, gate {gate:g}, k {k}, weight {w:g}", LOOKUPS[lookup][0],
                    (("temperature", tau), ("min_similarity", gate), ("top_k", k), ("weight", w),
                     ("bare_lookup", LOOKUPS[lookup][1]), ("exemplar_weight", 0.0)))
            for lookup, tau, gate, k, w in itertools.product(LOOKUPS, (0.2, 0.3, 0.5, 1.0), (0.5, 0.55, 0.6, 0.7),
                                                             (10, 20), (2.0, 4.0, 8.0))]


def exemplar_grid(ensemble: bool) -> list[Setting]:
    """v12's grid: exemplar gate × m × λ at the recipe's prototype settings."""
    out = [Setting("no exemplar support", ensemble, (("exemplar_weight", 0.0),))]
    for gate, m, lam in itertools.product((0.5, 0.55, 0.6, 0.65, 0.7), (1, 2, 3, 5), (0.5, 1.0, 1.5, 2.0, 3.0)):
        out.append(Setting(f"exemplars: gate {gate:g}, m {m}, λ {lam:g}", ensemble,
                           (("exemplar_min_similarity", gate), ("exemplar_top_m", m), ("exemplar_weight", lam))))
    return out


def hubness_grid(ensemble: bool) -> list[Setting]:
    """v14's grid: the labels' action words as aliases or not, × no hubness correction or weight α
    {0.5, 1, 1.5, 2} × neighbours K {30, 100, 300}, × the wordings of the categories."""
    hubs = {"no hubness correction": ((("exemplar_hub_weight", 0.0),), 0)}
    hubs.update({f"hubness α {a:g}, K {k}": ((("exemplar_hub_weight", a),), k)
                 for a, k in itertools.product((0.5, 1.0, 1.5, 2.0), (30, 100, 300))})
    return [Setting(f"{'action words' if actions else 'no action words'}, {name}; {w} wording", ensemble, fields, w,
                    hub_k, actions)
            for actions in (False, True) for name, (fields, hub_k) in hubs.items() for w in WORDINGS]


def alias_grid(ensemble: bool) -> list[Setting]:
    """v13's grid: no alias keys, or alias gate a_g {0.7, 0.75, 0.8, 0.85, 0.9}, × the wordings of
    the categories, at the recipe's other settings."""
    gates = {"no alias keys": (("alias_keys", None), ("alias_labels", None), ("alias_words", None))}
    gates.update({f"alias gate {g:g}": (("alias_min_similarity", g),) for g in (0.7, 0.75, 0.8, 0.85, 0.9)})
    return [Setting(f"{name}; {w} wording", ensemble, fields, w) for name, fields in gates.items() for w in WORDINGS]


def category_scores(model, audio, text, setting: Setting, protos) -> np.ndarray:
    """(N, 27) scores of sounds for the category queries (typed as the setting's wording) under
    ``setting``: cosine plus support."""
    chosen = setting.apply(protos)
    queries = list(WORDINGS[setting.wording])
    cat_emb = ensembled_text(model, queries, text, setting.ensemble, chosen)
    return audio @ cat_emb.T + support_matrix(audio, label_support(queries, text, setting.ensemble, chosen))


def corpus(cache: Path, data_seed: int, acoustic_views: int):
    """The recipe's corpus, aiSFX's CNN state and the cached features of one augmentation draw."""
    base = TrainConfig()
    torch.set_num_threads(base.threads)
    items = build_corpus(cache, tuple(base.packages), procedural_variants=base.procedural_variants,
                         procedural_generators=base.procedural_generators)
    cnn = aisfx_checkpoint(cache)
    fs = compute_features(items, _new_model(base.model_config(), cnn, base.seed).audio, cache, seed=data_seed,
                          max_windows=base.max_windows, pitch_prob=base.pitch_prob, n_mixes=base.n_mixes,
                          acoustic_views=acoustic_views, progress=False)
    return items, cnn, fs


def stand_in(cache: Path, data_seed: int, grid: list[Setting]) -> dict[str, float]:
    """Pooled top-1 over the stand-in's folds for every setting of ``grid``, at one data seed."""
    base = TrainConfig()
    items, cnn, fs = corpus(cache, data_seed, acoustic_views=0)
    cats = list(CATEGORIES)
    text = text_embeddings(sorted(set(fs.labels)), cats, cache, progress=False)
    text.update(prompt_embeddings(sorted({q for st in grid for q in WORDINGS[st.wording]} - set(cats)), cache))
    packages = {it.package for it in items} - {PROCEDURAL}
    right: dict[str, list[bool]] = {st.name: [] for st in grid}
    for p, sounds in folds(items, fs).items():
        if p == PROCEDURAL:
            continue
        train_pk = packages - {p} | ({PROCEDURAL} if base.procedural_variants else set())
        model, protos, _ = train_on(base, cnn, fs, items, text, train_pk)
        ids, audio = sound_embeddings(model, fs, _plain_rows(fs, sounds))
        truth = np.asarray([category_of(items[s].label) for s in ids])
        for st in grid:
            pred = np.asarray(cats)[category_scores(model, audio, text, st, protos).argmax(1)]
            right[st.name] += (pred == truth).tolist()
        print(f"data seed {data_seed}: {p} done", flush=True)
    return {k: float(np.mean(v)) for k, v in right.items()}


def validation(cache: Path, grid: list[Setting]) -> dict[str, dict[str, float]]:
    """Validation-split zero-shot top-1 and text→audio mAP@10 under every setting of ``grid``
    (the validation model `earmark train-encoder` trains, at its own data seed)."""
    base = TrainConfig()
    items, cnn, fs = corpus(cache, base.seed, acoustic_views=base.acoustic_views)
    labels = sorted(set(fs.labels))
    text = text_embeddings(labels, labels, cache, progress=False)
    packages = {it.package for it in items}
    val = set(base.val_packages) & packages
    model, protos, _ = train_on(base, cnn, fs, items, text, packages - val)
    out = {}
    for st in grid:
        r = measure(model, fs, items, val, text, st.ensemble, st.apply(protos))
        out[st.name] = {"zero_shot_top1": r.zero_shot_top1, "t2a_map10": r.t2a_map10}
    return out


def demo(encoder: str, grid: list[Setting]) -> dict[str, dict]:
    """The demo test's queries under every setting of ``grid``, on ``encoder``'s weights."""
    folder = tempfile.mkdtemp(prefix="earmark-demo-grid-")
    run_demo(folder, ["speech"], k=3, encoder=encoder, progress=False)
    lib = Library(folder)
    enc = lib.encoder
    base = enc.prototypes
    out = {}
    if base.exemplars is None and any(dict(st.fields).get("exemplar_weight", 0) > 0 for st in grid):
        raise SystemExit(f"{encoder}: its checkpoint has no exemplars to score the exemplar grid with")
    for st in grid:
        enc.prompt_ensemble, enc.prototypes = st.ensemble, st.apply(base)
        top = {q: [h.path.rsplit("/", 1)[-1].removesuffix(".ogg") for h in lib.search(q, k=3).hits] for q, _ in QUERIES}
        wrong = [q for q, answers in QUERIES if top[q][0] not in answers]
        out[st.name] = {
            "first": len(QUERIES) - len(wrong), "top3": sum(bool(set(top[q]) & set(a)) for q, a in QUERIES),
            "speech_first": top["speech"][0] in SPEECH and top["+speech"][0] in SPEECH, "wrong_first": wrong}
    return out


def passes(d: dict) -> bool:
    """tests/test_demo_queries.py's bar."""
    return d["top3"] == len(QUERIES) and d["first"] >= 0.85 * len(QUERIES) and d["speech_first"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=cache_root() / "corpus")
    ap.add_argument("--data-seed", type=int, action="append", help="repeatable; default 0 and 1")
    ap.add_argument("--demo-encoder", default="embedded", help="checkpoint whose demo library is searched")
    grids = ap.add_mutually_exclusive_group()  # one grid a run
    grids.add_argument("--exemplars", action="store_true",
                       help="score the exemplar-support grid (v12) instead of v11's lookup grid, and the validation split")
    grids.add_argument("--aliases", action="store_true",
                       help="score the alias-key grid (v13) under every wording of the categories, and the validation "
                            "split (the demo encoder must have alias keys)")
    grids.add_argument("--hubness", action="store_true",
                       help="score the labels' action words as aliases and the support's hubness correction (v14) under "
                            "every wording of the categories, and the validation split (the demo encoder must have "
                            "exemplars and the action words: a v14 checkpoint)")
    ap.add_argument("--top", type=int, default=10)
    ap.add_argument("--json", type=Path)
    args = ap.parse_args()
    seeds = args.data_seed or [0, 1]
    ensemble = TrainConfig().prompt_ensemble == "on"
    grid = (exemplar_grid(ensemble) if args.exemplars else alias_grid(ensemble) if args.aliases
            else hubness_grid(ensemble) if args.hubness else lookup_grid())
    pooled = {seed: stand_in(args.cache, seed, grid) for seed in seeds}
    val = validation(args.cache, grid) if args.exemplars or args.aliases or args.hubness else {}
    gate = demo(args.demo_encoder, grid)
    rows = sorted(((float(np.mean([pooled[s][k] for s in seeds])), k) for k in gate), reverse=True)
    val_head = " validation zero-shot / mAP@10 |" if val else ""
    head = ("| setting | mean | " + " | ".join(f"data seed {s}" for s in seeds) + " | demo first / top 3 | demo bar |"
            + val_head)
    print("\n" + head + "\n|---|---|" + "---|" * len(seeds) + "---|---|" + ("---|" if val else ""))
    shown = [r for r in rows[: args.top]] + [r for r in rows if passes(gate[r[1]])][: args.top]
    if args.exemplars:
        shown.append((float(np.mean([pooled[s]["no exemplar support"] for s in seeds])), "no exemplar support"))
    if args.aliases or args.hubness:  # small grids: every setting, in grid order
        shown = [(float(np.mean([pooled[s][st.name] for s in seeds])), st.name) for st in grid]
    for mean, k in dict.fromkeys(shown):
        v = f" {val[k]['zero_shot_top1']:.3f} / {val[k]['t2a_map10']:.3f} |" if val else ""
        print(f"| {k} | {mean:.3f} | " + " | ".join(f"{pooled[s][k]:.3f}" for s in seeds)
              + f" | {gate[k]['first']} / {gate[k]['top3']} | {'kept' if passes(gate[k]) else 'missed'} |" + v)
    if args.json:
        args.json.write_text(json.dumps({"data_seeds": seeds, "pooled": pooled, "demo": gate, "validation": val},
                                        indent=1))


if __name__ == "__main__":
    main()
