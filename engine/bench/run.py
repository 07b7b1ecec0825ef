"""The two benchmarks: zero-shot classification and text↔audio retrieval, dense against concept.

Per clip one embedding z (embed_cache). Rows:

- ``dense``: z itself.
- ``concept``: x̂ = recompose(decompose(z)) for each vocabulary × sparsity (λ or target L0), the
  paper's form; audio is centred with the mean clip embedding of the dataset. Text stays dense.
- ``dense+adapter`` / ``concept+adapter`` (classification, ``adapter=True``): for each test fold
  the paper's d×d adapter is trained on the clips of all other folds (labels → prompts) and
  applied to the test fold's clips, then scored as above.

Scores are cosines against each label's prompts' text embeddings, averaged (classification) or
of the captions (retrieval).
"""
from __future__ import annotations

import hashlib
import platform
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np

from ..concepts.adapter import AdapterError, train_adapter
from ..concepts.decompose import ConceptCodes, decompose, recompose
from ..concepts.dictionary import ConceptDictionary, build_dictionary
from ..encoders.base import Encoder, l2_normalise
from ..encoders.exemplar_support import support_matrix
from ..codebook import resolve_vocabulary
from . import classify as C
from .datasets import Dataset, fold_sort_key
from .embed_cache import DEFAULT_CACHE, DEFAULT_POOLING, cached_codes, cached_text, clip_embeddings
from .errors import BenchError
from .prompts import label_text, resolve_prompts
from .report import BenchResult, BenchRow
from .retrieve import caption_relevance, chance_retrieval, retrieval_metrics

__all__ = ["DEFAULT_LAMS", "DEFAULT_VOCABULARIES", "Sparsity", "run_classify", "run_retrieve", "sparsities"]

DEFAULT_VOCABULARIES = ("baseline", "pruned", "clustered")
DEFAULT_LAMS = (0.05, 0.15, 0.25)
CHANCE_DRAWS = 20


@dataclass(frozen=True)
class Sparsity:
    """A fixed λ or a target number of concepts per clip (exactly one is set)."""

    lam: float | None = None
    target_l0: int | None = None


def sparsities(lams: tuple[float, ...] = (), target_l0s: tuple[int, ...] = ()) -> list[Sparsity]:
    """λ values then L0 targets; both empty → the default λ 0.05, 0.15, 0.25."""
    if not lams and not target_l0s:
        lams = DEFAULT_LAMS
    for lam in lams:
        if lam <= 0:
            raise BenchError(f"--lam must be > 0, got {lam}")
    for l0 in target_l0s:
        if l0 < 1:
            raise BenchError(f"--target-l0 must be >= 1, got {l0}")
    return [Sparsity(lam=float(x)) for x in lams] + [Sparsity(target_l0=int(x)) for x in target_l0s]


class _Concepts:
    """Dictionaries per vocabulary (text embeddings cached) and cached decompositions."""

    def __init__(self, encoder: Encoder, vocabularies: tuple[str, ...], cache_dir: Path | None, progress: bool):
        self.cache_dir = cache_dir
        self.progress = progress
        self.vocabularies = [resolve_vocabulary(v) for v in vocabularies]
        self.names = list(vocabularies)
        dict_cache = cache_dir / "dictionaries" if cache_dir else None
        self.dictionaries: dict[str, ConceptDictionary] = {
            name: build_dictionary(encoder, vocab, cache_dir=dict_cache)
            for name, vocab in zip(self.names, self.vocabularies)
        }

    def hashes(self) -> dict[str, str]:
        """Display name → vocabulary hash (the hash covers the concepts in order)."""
        return {v.name: v.hash for v in self.vocabularies}

    def display(self, name: str) -> str:
        """The vocabulary's own name (a file's stem) for the spec ``name``."""
        return self.vocabularies[self.names.index(name)].name

    def codes(self, name: str, emb: np.ndarray, audio_mean: np.ndarray, sp: Sparsity, key: dict) -> ConceptCodes:
        d = self.dictionaries[name].with_audio_mean(audio_mean)
        parts = {**key, "vocabulary": d.vocabulary_hash, "lam": sp.lam, "target_l0": sp.target_l0,
                 "mean": hashlib.sha256(np.asarray(audio_mean, np.float32).tobytes()).hexdigest()[:16]}
        return cached_codes(self.cache_dir, parts, d.concepts,
                            lambda: decompose(emb, d, lam=sp.lam, target_l0=sp.target_l0))

    def recomposed(self, name: str, codes: ConceptCodes, audio_mean: np.ndarray) -> np.ndarray:
        return recompose(codes.weights, self.dictionaries[name].with_audio_mean(audio_mean))

    def row(self, kind: str, name: str, sp: Sparsity, metrics: dict, l0: np.ndarray, fidelity: np.ndarray,
            per_class: dict | None = None, per_fold: dict | None = None) -> BenchRow:
        """A concept row: vocabulary ``name`` at sparsity ``sp``, mean L0 and fidelity of the evaluated clips."""
        return BenchRow(kind, metrics, self.display(name), self.dictionaries[name].vocabulary_hash, sp.lam,
                        sp.target_l0, float(np.mean(l0)), float(np.mean(fidelity)), per_class, per_fold)


def _provenance(encoder: Encoder, concepts: _Concepts | None, seed: int, command: str, extra: dict) -> dict:
    try:
        from importlib.metadata import version

        ver = version("earmark")
    except Exception:  # an uninstalled checkout still benchmarks
        ver = "unknown"
    import torch

    return {"command": command, "encoder": encoder.name, "encoder_fingerprint": encoder.fingerprint,
            "vocabularies": concepts.hashes() if concepts else {},
            "vocabulary_sources": concepts.names if concepts else [], "seed": seed, "earmark_version": ver,
            "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
            "python": platform.python_version(), "torch": torch.__version__, "torch_threads": torch.get_num_threads(),
            "audio_mean": "mean clip embedding of the benchmarked clips", **extra}


def _bar(total: int, desc: str, progress: bool):
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit="row", disable=not progress, dynamic_ncols=True)


# ---------------------------------------------------------------------------- classification

def _assign_folds(dataset: Dataset, n_folds: int, seed: int) -> list[str | None]:
    if dataset.folds:
        return [it.fold for it in dataset.items]
    if n_folds < 2:
        raise BenchError(f"--n-folds must be >= 2 for the adapter, got {n_folds}")
    perm = np.random.default_rng(seed).permutation(len(dataset))
    folds: list[str | None] = [None] * len(dataset)
    for rank, i in enumerate(perm):
        folds[int(i)] = str(rank % n_folds + 1)
    return folds


def _class_metrics(scores: np.ndarray, targets: np.ndarray, folds: list[str | None], labels: list[str]
                   ) -> tuple[dict[str, float], dict[str, float], dict[str, float] | None]:
    """(metrics, per-class accuracy, per-fold accuracy or None) of one row's scores."""
    acc, per_fold = C.fold_accuracy(scores, targets, folds)
    metrics = {"accuracy": acc, "accuracy_pooled": C.accuracy(scores, targets),
               "map": C.mean_average_precision(scores, targets),
               **C.f1_scores(C.top1_decisions(scores), targets)}
    per_class = {lab: float(v) for lab, v in zip(labels, C.per_class_accuracy(scores, targets)) if not np.isnan(v)}
    has_folds = any(f is not None for f in folds)
    return metrics, per_class, (per_fold if has_folds else None)


def _classify_chance(targets: np.ndarray, folds: list[str | None], seed: int) -> dict[str, float]:
    rng = np.random.default_rng(seed)
    runs = []
    for _ in range(CHANCE_DRAWS):
        s = rng.random(targets.shape)
        runs.append({"map": C.mean_average_precision(s, targets), **C.f1_scores(C.top1_decisions(s), targets)})
    out = {k: float(np.mean([r[k] for r in runs])) for k in runs[0]}
    # Expected top-1 accuracy of a random guess, per fold then averaged like the real rows.
    f = np.array(["" if x is None else x for x in folds])
    per = [float(np.mean(targets[f == name].sum(1) / targets.shape[1])) for name in sorted(set(f))]
    out["accuracy"] = float(np.mean(per))
    out["accuracy_pooled"] = float(np.mean(targets.sum(1) / targets.shape[1]))
    return out


def run_classify(dataset: Dataset, encoder: Encoder, *, vocabularies: tuple[str, ...] = DEFAULT_VOCABULARIES,
                 lams: tuple[float, ...] = (), target_l0s: tuple[int, ...] = (), adapter: bool = False,
                 folds: tuple[str, ...] = (), n_folds: int = 5, alpha: float = 1.0, seed: int = 0,
                 prompts: Sequence[str] | None = None, cache_dir: str | Path | None = DEFAULT_CACHE,
                 progress: bool = False, command: str = "", pooling: str = DEFAULT_POOLING,
                 exemplars: bool = True) -> BenchResult:
    """Zero-shot classification of ``dataset``'s clips into its labels.

    Each label's text vector averages ``prompts`` filled with the label (None: the encoder's
    ``default_prompts``; engine/bench/prompts.py). With ``exemplars`` a clip's score for a label
    also counts the encoder's exemplar support for the bare label, as search ranks a sound for
    that text (the embedded encoder since v12; no other encoder has any), in the dense and concept
    rows; not in the adapter rows, whose clip vectors the adapter has moved out of the audio space
    the exemplars live in.

    Metrics per row: accuracy (mean over the evaluated folds when the dataset has folds), mAP,
    micro/macro F1 of top-1 decisions, per-class and per-fold accuracy. ``folds`` limits the
    evaluation to those test folds (default: all clips). Datasets without folds get ``n_folds``
    seeded folds when ``adapter`` is set.
    """
    prompts = resolve_prompts(encoder, prompts)
    unlabelled = [it.path for it in dataset.items if not it.labels]
    if unlabelled:
        raise BenchError(f"{dataset.source}: {len(unlabelled)} clip(s) have no label (e.g. {unlabelled[0]}); "
                         f"classify needs a label per clip (use `bench retrieve` for captions)")
    labels = dataset.labels
    if len(labels) < 2:
        raise BenchError(f"{dataset.source}: classify needs at least two labels, found {len(labels)}")
    cache = Path(cache_dir).expanduser() if cache_dir else None
    sps = sparsities(lams, target_l0s)
    clip_folds = _assign_folds(dataset, n_folds, seed) if (adapter or dataset.folds) else [None] * len(dataset)
    fold_names = sorted({f for f in clip_folds if f is not None}, key=fold_sort_key)
    unknown = [f for f in folds if f not in fold_names]
    if unknown:
        raise BenchError(f"unknown fold(s) {', '.join(unknown)}: the dataset's folds are "
                         f"{', '.join(fold_names) or 'none'}")
    eval_rows = np.array([i for i, f in enumerate(clip_folds) if not folds or f in folds])

    emb, emb_key = clip_embeddings(dataset, encoder, cache, progress=progress, pooling=pooling)
    concepts = _Concepts(encoder, tuple(vocabularies), cache, progress) if vocabularies else None
    text = label_text(labels, prompts, lambda texts: cached_text(texts, encoder, cache, desc="prompts"))
    supports = encoder.query_support([lab.replace("_", " ") for lab in labels]) if exemplars else [None] * len(labels)

    def scores(vectors: np.ndarray, class_text: np.ndarray) -> np.ndarray:
        """(n, K) cosine with each label's text vector, plus its exemplar support term."""
        return C.zero_shot_scores(vectors, class_text) + support_matrix(vectors, supports)
    index = {lab: k for k, lab in enumerate(labels)}
    targets = np.zeros((len(dataset), len(labels)), bool)
    for i, it in enumerate(dataset.items):
        targets[i, [index[lab] for lab in it.labels]] = True

    ev_targets = targets[eval_rows]
    ev_folds = [clip_folds[i] for i in eval_rows]
    n_rows = (1 + len(vocabularies) * len(sps)) * (2 if adapter else 1)
    rows: list[BenchRow] = []
    mean = emb.mean(axis=0)
    key = {"embeddings": emb_key}
    with _bar(n_rows, "classify", progress) as bar:
        m, pc, pf = _class_metrics(scores(emb[eval_rows], text), ev_targets, ev_folds, labels)
        rows.append(BenchRow("dense", m, per_class=pc, per_fold=pf))
        bar.update()
        for name in vocabularies:
            for sp in sps:
                codes = concepts.codes(name, emb, mean, sp, key)
                rec = concepts.recomposed(name, codes, mean)
                m, pc, pf = _class_metrics(scores(rec[eval_rows], text), ev_targets, ev_folds, labels)
                rows.append(concepts.row("concept", name, sp, m, codes.l0[eval_rows], codes.fidelity[eval_rows],
                                         pc, pf))
                bar.update()
        if adapter:
            rows += _adapter_rows(dataset, encoder, emb, emb_key, targets, labels, clip_folds, folds or fold_names,
                                  eval_rows, text, concepts, vocabularies, sps, alpha, prompts, bar)

    result = BenchResult(
        task="classify",
        dataset={"name": dataset.name, "format": dataset.format, "source": dataset.source, "clips": len(eval_rows),
                 "clips_in_dataset": len(dataset), "classes": len(labels), "labels": labels,
                 "multi_label": dataset.multi_label, "folds": fold_names, "evaluated_folds": list(folds) or fold_names,
                 "audio_fingerprint": dataset.audio_fingerprint(), "skipped_missing": len(dataset.skipped)},
        rows=rows,
        chance=_classify_chance(ev_targets, ev_folds, seed),
        provenance=_provenance(encoder, concepts, seed, command, {
            "prompts": list(prompts), "exemplar_support": sum(x is not None for x in supports),
            "embeddings_key": emb_key, "clip_pooling": pooling, "adapter": adapter,
            "adapter_alpha": alpha if adapter else None,
            "fold_assignment": "dataset" if dataset.folds else (f"{n_folds} seeded folds" if adapter else "none")}),
    )
    if dataset.multi_label:
        result.notes.append("multi-label: accuracy = top-1 class is one of the clip's labels; F1 from top-1 decisions")
    return result


def _adapter_rows(dataset, encoder, emb, emb_key, targets, labels, clip_folds, test_folds, eval_rows, text,
                  concepts, vocabularies, sps, alpha, prompts, bar) -> list[BenchRow]:
    """Dense and concept rows through an adapter trained, per test fold, on all other folds."""
    adapted = np.zeros_like(emb)
    settings = [(name, sp) for name in vocabularies for sp in sps]
    rec = {s: np.zeros_like(emb) for s in settings}
    l0 = {s: np.zeros(len(emb)) for s in settings}
    fid = {s: np.zeros(len(emb)) for s in settings}
    f = np.array(["" if x is None else x for x in clip_folds])
    for fold in test_folds:
        test, train = np.where(f == fold)[0], np.where(f != fold)[0]
        rows_x, rows_y = [], []
        for i in train:
            for lab in dataset.items[i].labels:
                rows_x.append(i)
                rows_y.append(lab)
        try:
            # The adapter's targets are the labels' text vectors as classification scores them:
            # train_adapter fills "{}" with the bare label, label_text applies the prompts.
            ad = train_adapter(emb[rows_x], rows_y, lambda names: label_text(names, prompts, encoder.embed_text),
                               alpha=alpha, prompt="{}", encoder_fingerprint=encoder.fingerprint)
        except AdapterError as exc:
            raise BenchError(f"adapter for test fold {fold}: {exc}") from exc
        adapted_all = ad.apply(emb)
        adapted[test] = adapted_all[test]
        mean = adapted_all.mean(axis=0)
        tag = hashlib.sha256(ad.matrix.tobytes()).hexdigest()[:16]
        for name, sp in settings:
            rows_tag = hashlib.sha256(test.tobytes()).hexdigest()[:16]
            codes = concepts.codes(name, adapted_all[test], mean, sp,
                                   {"embeddings": emb_key, "adapter": tag, "rows": rows_tag})
            rec[(name, sp)][test] = concepts.recomposed(name, codes, mean)
            l0[(name, sp)][test] = codes.l0
            fid[(name, sp)][test] = codes.fidelity
    ev_t = targets[eval_rows]
    ev_f = [clip_folds[i] for i in eval_rows]
    out = []
    m, pc, pf = _class_metrics(C.zero_shot_scores(adapted[eval_rows], text), ev_t, ev_f, labels)
    out.append(BenchRow("dense+adapter", m, per_class=pc, per_fold=pf))
    bar.update()
    for name, sp in settings:
        m, pc, pf = _class_metrics(C.zero_shot_scores(rec[(name, sp)][eval_rows], text), ev_t, ev_f, labels)
        out.append(concepts.row("concept+adapter", name, sp, m, l0[(name, sp)][eval_rows], fid[(name, sp)][eval_rows],
                                pc, pf))
        bar.update()
    return out


# ---------------------------------------------------------------------------- retrieval

def run_retrieve(dataset: Dataset, encoder: Encoder, *, vocabularies: tuple[str, ...] = DEFAULT_VOCABULARIES,
                 lams: tuple[float, ...] = (), target_l0s: tuple[int, ...] = (), seed: int = 0,
                 cache_dir: str | Path | None = DEFAULT_CACHE, progress: bool = False,
                 command: str = "", pooling: str = DEFAULT_POOLING) -> BenchResult:
    """Text→audio and audio→text R@1/5/10 and mAP@10 over the dataset's captions, dense against concept."""
    keep = [i for i, it in enumerate(dataset.items) if it.captions]
    if not keep:
        raise BenchError(f"{dataset.source}: no captions; retrieve needs captions (clotho, audiocaps, a csv with a "
                         f"caption column, or the corpus manifest)")
    left_out = len(dataset) - len(keep)
    data = dataset.subset(keep) if left_out else dataset
    cache = Path(cache_dir).expanduser() if cache_dir else None
    sps = sparsities(lams, target_l0s)
    emb, emb_key = clip_embeddings(data, encoder, cache, progress=progress, pooling=pooling)
    captions, relevant = caption_relevance([it.captions for it in data.items])
    cap_emb = l2_normalise(cached_text(captions, encoder, cache, progress=progress, desc="captions"))
    concepts = _Concepts(encoder, tuple(vocabularies), cache, progress) if vocabularies else None
    rows = []
    mean = emb.mean(axis=0)
    with _bar(1 + len(vocabularies) * len(sps), "retrieve", progress) as bar:
        rows.append(BenchRow("dense", retrieval_metrics(emb, cap_emb, relevant)))
        bar.update()
        for name in vocabularies:
            for sp in sps:
                codes = concepts.codes(name, emb, mean, sp, {"embeddings": emb_key})
                rec = concepts.recomposed(name, codes, mean)
                rows.append(concepts.row("concept", name, sp, retrieval_metrics(rec, cap_emb, relevant), codes.l0,
                                         codes.fidelity))
                bar.update()
    result = BenchResult(
        task="retrieve",
        dataset={"name": data.name, "format": data.format, "source": data.source, "clips": len(data),
                 "captions": len(captions), "caption_slots": int(sum(len(it.captions) for it in data.items)),
                 "clips_without_captions_left_out": left_out, "audio_fingerprint": data.audio_fingerprint(),
                 "skipped_missing": len(dataset.skipped)},
        rows=rows,
        chance=chance_retrieval(relevant, seed=seed),
        provenance=_provenance(encoder, concepts, seed, command, {"embeddings_key": emb_key, "clip_pooling": pooling}),
    )
    if int(relevant.sum(axis=1).max()) > 1:
        result.notes.append("some captions describe several clips (identical caption text): all of them are relevant")
    return result
