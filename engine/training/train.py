"""`earmark train-encoder`: rebuild the corpus and the embedded encoder reproducibly.

Steps: corpus (Debian packages + sox/espeak-ng, labelled and captioned) → frozen aisfx CNN
features (cached) → frozen MiniLM sentence embeddings of every caption (cached) → train the
audio and text projection heads with a symmetric contrastive loss and a learned temperature.
Clips that share a label are positives for each other (multi-positive targets), so they are
not punished as negatives.

With ``TrainConfig.block4_scale`` > 0 the CNN's last block trains too, from cached block-3 maps
(tuned_block4.py), and is folded into the shipped CNN.

Two trainings run with the same settings and seed: one on the training packages only, measured
on the validation packages (held out by source package, not by file) against the untrained
projection (baseline) and chance; then one on all packages, whose weights are shipped.
"""
from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import sys
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from tqdm import tqdm

from ...index.files import atomic_write
from ..encoders.embedded_model import AudioConfig, EmbeddedClap, ModelConfig, SentenceEncoder, load_aisfx_cnn, minilm_dir
from ..encoders.exemplar_support import hubness, support_matrix
from ..encoders.sound_prototypes import SoundPrototypes
from . import captions as C
from .corpus import DEBIAN_PACKAGES, PROCEDURAL, CorpusItem, build_corpus
from .evaluate import RetrievalMetrics, chance, evaluate
from .features import VIEW_KIND, FeatureSet, compute_features
from .label_words import action_words, alias_words, label_words
from .tuned_block4 import Block3Maps, Block4TunedClap

AISFX_VERSION = "0.1.2"
WEIGHTS_NAME = "embedded-clap.pt"
# Packages held out for validation: everyday sounds (footsteps, fire, water, wind, birds, voices,
# monsters, doors, music) from games whose files never enter the validation-split training.
VAL_PACKAGES: tuple[str, ...] = (
    "minetest-data", "flare-game", "lincity-ng-data", "extremetuxracer-data", "frozen-bubble-data",
)


class TrainingError(Exception):
    """Training cannot proceed; the message says what to install or fix."""


@dataclass
class TrainConfig:
    """Hyper-parameters of `train_encoder` (recorded in the model card and the weights file)."""

    seed: int = 0
    epochs: int = 40
    batch_size: int = 256
    lr: float = 1e-3
    weight_decay: float = 1e-4
    input_dropout: float = 0.1  # dropout on the cached CNN features (cheap augmentation)
    # Sample rows ∝ 1 / count(label)^power. 1.0 (every label equally often) beat 0.5 on the
    # everyday-category benchmark: 0.325 against 0.306 pooled top-1, linear heads, 2026-12-02.
    balance_power: float = 1.0
    max_windows: int = 3
    pitch_prob: float = 0.35
    n_mixes: int = 1500
    acoustic_views: int = 0  # per sound: a random loud window through a random channel (features.py)
    # Row kinds trained on: 0 plain windows, 1 pitch-shifted, 2 mixtures, 3 acoustic views.
    train_kinds: tuple[int, ...] = (0, 1, 2, 3)
    val_packages: tuple[str, ...] = VAL_PACKAGES
    packages: tuple[str, ...] = DEBIAN_PACKAGES  # Debian packages in the corpus (synth sounds always)
    # True: retrain on all packages (validation ones included) and ship that model.
    # False: ship the validation-split model itself, so the card's figures describe it exactly.
    final_on_all_packages: bool = True
    threads: int = 2  # CPU threads for torch (the build machine has 2 cores)
    # False: the residual GELU layer of both projection heads is zeroed and frozen, so each head
    # is linear + LayerNorm (fewer parameters to overfit the few hundred training labels). The
    # everyday-category benchmark (benchmarks/everyday_zero_shot.py) measures both; linear won.
    residual_heads: bool = False
    # Labels whose captions' mean MiniLM embeddings have cosine ≥ this count as positives for
    # each other ("sword clash" and "swords clashing" from two packages are not negatives).
    # None: only identical labels are positives.
    positive_similarity: float | None = None
    # Weight of a second loss term: each audio row classified among *all* training labels (each
    # label's text = the head of its mean caption embedding), not only the labels that happen to
    # share its batch. 0: off (the in-batch symmetric loss alone).
    label_softmax_weight: float = 0.0
    # Query-time sound prototypes (engine/encoders/sound_prototypes.py): a query is blended with
    # the mean audio embedding of the training labels nearest it in MiniLM space. Weight 0 turns
    # them off. Chosen on the everyday-category benchmark (docs/model-card.md, "How the prototype
    # settings were chosen"): each of τ, k, weight and the key-cosine gate at its best mean over
    # a 192-setting grid of the other three, not the grid's single best setting.
    # 0.5 since v11 (0.3 before): with prompt ensembling and the bare-text lookup, the best
    # setting on the everyday benchmark of those that keep the demo library's queries right
    # (docs/model-card.md, v11).
    prototype_temperature: float = 0.5
    prototype_top_k: int = 10
    prototype_weight: float = 4.0
    # Key cosine a label needs to join the blend (below it for all k labels: the head alone).
    prototype_min_similarity: float = 0.6
    # True: a label's prototype is the mean of its per-package means (each package's sounds of
    # the label averaged first), so a package with many sounds of a label does not make the
    # label sound like that one game. False: the mean over all its sounds (v3–v7). Off: 0.364
    # pooled against 0.369 on the everyday benchmark, one draw (docs/model-card.md).
    prototype_package_balance: bool = False
    # True: with prompt ensembling on, a query looks the labels up by its bare text, not by the
    # mean of its templated prompts (SoundPrototypes.bare_lookup; v11). Off with ensembling off.
    prototype_bare_lookup: bool = True
    # Query-time exemplar support (v12; SoundPrototypes.support): a sound also scores λ × the mean
    # of its m highest cosines with the training sounds of every label whose key cosine reaches
    # the gate. Weight 0 ships no exemplars. Chosen on the everyday benchmark, the demo library's
    # queries and the validation split (benchmarks/prototype_settings.py --exemplars; docs/model-card.md,
    # v12): λ 1 classifies the stand-in through the product at 0.469 (v11 0.444) and searches it
    # as v11 did (mAP 0.600); λ 2 classified at 0.474 but searched at 0.589.
    exemplar_weight: float = 1.0
    exemplar_top_m: int = 2
    exemplar_min_similarity: float = 0.6
    # Nearest-label fallback (SoundPrototypes.exemplar_fallback_similarity), off (1.0): "chicken"
    # reaches no label at 0.6 and gets no support, and the stand-in's chickens went from 5 of 14
    # right to 0; at 0.5 it takes "a chicken clucking"'s, which left every classification the same
    # (the held-out chickens sound unlike the other packages'), lowered search mAP from 0.600 to
    # 0.595 and raised the validation split's text→audio mAP@10 from 0.146 to 0.161: a wash, so
    # the simpler rule ships (docs/model-card.md, v12).
    exemplar_fallback_similarity: float = 1.0
    # Hubness correction of the support (v14; exemplar_support.hubness, CSLS): a sound's cosine with an
    # exemplar counts less exemplar_hub_weight × the exemplar's mean cosine with its exemplar_hub_k
    # nearest fellow exemplars, so the corpus's crowded corners (one game's near-identical footsteps,
    # a procedural generator's variants) stop lending every query's support to every sound. Weight 0:
    # none (v12, v13). Chosen on the stand-in typed three ways at two data seeds, the demo library's
    # queries and the validation split (benchmarks/prototype_settings.py --hubness; docs/model-card.md, v14).
    exemplar_hub_weight: float = 1.0
    exemplar_hub_k: int = 100
    # Alias keys (v13; SoundPrototypes.alias_keys, engine/training/label_words.py): a query whose
    # lookup sentence reaches one of the words that named a label's files at this cosine reaches
    # the label. None: no aliases. With the stand-in's categories typed one word each ("gun",
    # "footstep", "dog", "birds", ...) v12 classified 0.275 of the sounds right through the product
    # against 0.469 with their names; v13 (0.8) 0.452 against 0.471. Gates 0.7–0.9 differ by a few
    # sounds (benchmarks/prototype_settings.py --aliases); 0.7 also lets related words in ("spring
    # birds" → birds chirping). docs/model-card.md, v13.
    alias_min_similarity: float | None = 0.8
    # The labels' own action words join their alias words (v14; label_words.action_words): "screams"
    # reaches "screaming", so "a man screaming in pain", which its key misses (cosine 0.52). On the
    # stand-in (benchmarks/prototype_settings.py --hubness) the words gain 0.02–0.025
    # (screams 11 and 9 sounds at the two data seeds), the other wordings hold. docs/model-card.md, v14.
    alias_action_words: bool = True
    # Prompt ensembling at query time: "choose" lets the validation split decide (v1–v10, a rule
    # that sees neither concept codes nor the everyday categories), "on" or "off" fix it. "on"
    # since v11 (docs/model-card.md, v11: +0.02 on the everyday benchmark with the bare lookup).
    prompt_ensemble: str = "on"
    # > 0: the CNN's block 4 trains with the heads, its weights W₀ + block4_scale·Δ with Δ from
    # zero (engine/training/tuned_block4.py; the features are then block 3's cached maps, and Δ
    # is folded into the shipped CNN). 0: the CNN stays frozen, as in every shipped model so far.
    # docs/model-card.md, "A first try at training the CNN": 0.1 gained 6–8 sounds of 419 over
    # three seeds at 8 epochs; at 40 epochs (one seed) 5 sounds over all five folds (megaglest
    # +6, openarena +5, redeclipse +1, minetest −5, widelands −2) and a package mean unchanged
    # (0.479 → 0.478): within seed noise, so it stays off.
    block4_scale: float = 0.0
    # > 0: domain confusion (Tzeng et al. 2015): a linear classifier learns to tell a training row's
    # source package from its audio embedding, and the audio head is trained, with this weight, to
    # make that classifier's prediction uniform over the packages, so it is pushed to drop what
    # only identifies the game a sound comes from. 0: off (v6 and before). 0.3 since v7: on the
    # everyday benchmark over two augmentation draws 0.367 / 0.394 pooled against 0.344 / 0.364
    # off (0.1: 0.358 / 0.383, 1.0: 0.360 / 0.390; docs/model-card.md, "Domain confusion").
    package_adversary_weight: float = 0.3
    # True: the confusion is label-conditional. The classifier also learns a package prior per
    # label (a bias table), and the head is pushed to leave its prediction at the label's own
    # package mix, P(package | label) of the training rows, instead of at uniform. Packages hold
    # very different sounds (a drum kit, a war game), so uniform confusion also asks the head to
    # hide *what* a sound is wherever that names the package; conditioned on the label, only
    # what differs between packages' sounds of the same label (their recording chain) is pushed
    # out, and labels heard in one package only feel no push. Off: on the everyday benchmark it
    # lost to uniform confusion and to none (0.333 / 0.358 pooled over two augmentation draws,
    # against 0.369 / 0.394 and 0.344 / 0.364; docs/model-card.md, "Label-conditional confusion").
    package_adversary_by_label: bool = False
    # > 0: the audio front end drops the spectrum above this frequency (AudioConfig.band_limit_hz),
    # in training and in the shipped encoder, so a file's sample rate is no cue to its package.
    band_limit_hz: float = 0.0
    # > 0: this many procedurally synthesised sounds per generator (engine/training/procedural.py:
    # rain, wind, impacts, bells, animal calls, ... 27 generators in v8, 32 since v9) join the
    # corpus as package "procedural", never held out and never mixed. 0: off (v7 and before). 8 since v8
    # (docs/model-card.md, "Procedural everyday sounds"; everyday benchmark, pooled top-1 at
    # augmentation draws 0 / 1): in the prototypes only (below) 0.415 / 0.421 against v7's
    # 0.369 / 0.394; also in training, 4: 0.415 / 0.421, 8: 0.431 / 0.410, 24: 0.399 / 0.412.
    procedural_variants: int = 8
    # False: sound prototypes are taken from the real packages' sounds only, so a query is blended
    # with what the label sounds like in recordings. Real-only prototypes (with the procedural
    # sounds in training) lost most of the gain: 0.383 / 0.378 pooled.
    procedural_prototypes: bool = True
    # False (since v8): the procedural sounds only join the sound prototypes; the heads train on
    # the real packages alone. In training too they gained as much on the everyday benchmark but
    # cost the validation split 0.02–0.04 (audio→text R@1 0.129 → 0.104 / 0.136 → 0.100 at seeds
    # 0 / 1, zero-shot 0.143 → 0.125 / 0.161 → 0.139); prototypes-only leaves those unchanged.
    procedural_training: bool = False
    # Which generators (names in procedural.GENERATORS); None: all of them. v8 had the first 27
    # (procedural.V8_GENERATORS); v9 added horse, hooves, pig, laughter and cat.
    procedural_generators: tuple[str, ...] | None = None

    def fit_packages(self, packages: set[str]) -> set[str]:
        """The packages whose rows the heads train on, of a split's ``packages``."""
        return packages if self.procedural_training else packages - {PROCEDURAL}

    def __post_init__(self) -> None:
        if self.prompt_ensemble not in ("choose", "on", "off"):
            raise ValueError(f"prompt_ensemble must be 'choose', 'on' or 'off', not {self.prompt_ensemble!r}")

    def model_config(self) -> ModelConfig:
        """The model shape this recipe trains (the front end's band limit is the recipe's)."""
        return ModelConfig(audio=AudioConfig(band_limit_hz=self.band_limit_hz))

    def row_kinds(self) -> tuple[int, ...]:
        """``train_kinds``, less acoustic views when this recipe asks for none: a feature set
        shared between recipes may hold view rows that a recipe without views must not see."""
        return tuple(k for k in self.train_kinds if k != VIEW_KIND or self.acoustic_views > 0)


@dataclass
class TrainReport:
    """What one `train_encoder` run measured and wrote."""

    weights_path: str
    n_sounds: int
    n_train_rows: int
    validation: dict[str, dict] = field(default_factory=dict)  # model / baseline / chance → metrics
    prompt_ensemble: bool = True
    config: dict = field(default_factory=dict)


def aisfx_checkpoint(cache_dir: Path) -> dict[str, torch.Tensor]:
    """The aisfx checkpoint tensors, from the PyPI wheel (downloaded once, never installed)."""
    wheel_dir = cache_dir / "aisfx"
    wheels = sorted(wheel_dir.glob(f"aisfx-{AISFX_VERSION}-*.whl"))
    if not wheels:
        wheel_dir.mkdir(parents=True, exist_ok=True)
        cmd = [sys.executable, "-m", "pip", "download", "--no-deps", f"aisfx=={AISFX_VERSION}", "-d", str(wheel_dir)]
        try:
            subprocess.run(cmd, check=True, capture_output=True)
        except subprocess.CalledProcessError as exc:
            raise TrainingError(f"pip download aisfx failed: {exc.stderr.decode(errors='replace')[-300:]}") from exc
        wheels = sorted(wheel_dir.glob(f"aisfx-{AISFX_VERSION}-*.whl"))
    with zipfile.ZipFile(wheels[-1]) as zf:
        # The pickle holds (state_dict, dataset dict with numpy ints): weights_only cannot read it.
        state, _ = torch.load(io.BytesIO(zf.read("aisfx/models/checkpoint.pth")), map_location="cpu", weights_only=False)
    return state


def training_texts(labels: list[str], prompted: list[str]) -> list[str]:
    """What a run embeds with MiniLM: every caption of each of ``labels`` (training) and each of
    ``prompted`` written with every caption template (query-time prompt ensembling)."""
    return ([c for lab in labels for c in C.captions_for(lab)]
            + [tpl.format(q) for q in prompted for tpl in C.TEMPLATES])


def caption_embeddings(texts: list[str], cache_dir: Path, progress: bool) -> dict[str, np.ndarray]:
    """Frozen MiniLM sentence embeddings (384-d) of ``texts``, cached in cache_dir/text."""
    unique = sorted(set(texts))
    key = hashlib.sha1("\n".join(unique).encode()).hexdigest()[:16]
    path = cache_dir / "text" / f"minilm_{key}.npz"
    if path.exists():
        z = np.load(path)
        return dict(zip(unique, z["emb"]))
    enc = SentenceEncoder(minilm_dir()).eval()
    out = []
    with torch.no_grad():
        for i in tqdm(range(0, len(unique), 128), desc="captions", unit="batch", disable=not progress):
            out.append(enc(unique[i : i + 128]).numpy())
    emb = np.concatenate(out).astype(np.float32)
    path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(path, emb=emb)
    return dict(zip(unique, emb))


def text_embeddings(labels: list[str], prompted: list[str], cache_dir: Path, progress: bool) -> dict[str, np.ndarray]:
    """MiniLM embeddings of :func:`training_texts` and of ``labels``' alias words (label_words and
    action_words; files of their own, so the training texts embed as they did before aliases)."""
    text = caption_embeddings(training_texts(labels, prompted), cache_dir, progress)
    words = sorted({w for ws in label_words(labels).values() for w in ws} - set(text))
    text = {**text, **caption_embeddings(words, cache_dir, progress)} if words else text
    # the labels' action words (v14) in a file of their own, so the table words embed as they did in v13
    actions = sorted({w for lab in labels for w in action_words(lab)} - set(text))
    return {**text, **caption_embeddings(actions, cache_dir, progress)} if actions else text


def prompt_embeddings(queries: list[str], cache_dir: Path, progress: bool = False) -> dict[str, np.ndarray]:
    """MiniLM embeddings of ``queries`` written with every caption template (a benchmark's other
    wordings of its categories), in a cache file of their own, so the training texts embed exactly
    as in a run without them."""
    new = sorted(set(queries))
    return caption_embeddings([tpl.format(q) for q in new for tpl in C.TEMPLATES], cache_dir, progress) if new else {}


def _rows_in(fs: FeatureSet, items: list[CorpusItem], packages: set[str], kinds: tuple[int, ...]) -> np.ndarray:
    pk = np.array([items[i].package in packages for i in range(len(items))])
    ok = pk[fs.item] & np.isin(fs.kind, kinds)
    ok &= (fs.partner < 0) | pk[np.maximum(fs.partner, 0)]
    return np.where(ok)[0]


def label_sentences(labels: list[str], text: dict[str, np.ndarray]) -> np.ndarray:
    """(L, 384) float32: each label's mean MiniLM embedding over its captions (not normalised)."""
    return np.stack([np.mean([text[c] for c in C.captions_for(lab)], axis=0) for lab in labels])


def similar_labels(labels: list[str], text: dict[str, np.ndarray], threshold: float) -> np.ndarray:
    """(L, L) bool: label pairs whose captions' mean MiniLM embeddings have cosine ≥ threshold
    (every label is similar to itself)."""
    emb = label_sentences(labels, text)
    emb /= np.linalg.norm(emb, axis=1, keepdims=True)
    same = emb @ emb.T >= threshold
    np.fill_diagonal(same, True)
    return same


def row_packages(fs: FeatureSet, items: list[CorpusItem], rows: np.ndarray) -> np.ndarray:
    """(len(rows),) int: each row's source package as an index into the sorted package names;
    -1 for mixtures (two sounds, possibly from two packages)."""
    of_row = [items[int(i)].package for i in fs.item[rows]]
    index = {n: k for k, n in enumerate(sorted(set(of_row)))}
    pk = np.array([index[p] for p in of_row], dtype=np.int64)
    pk[fs.partner[rows] >= 0] = -1
    return pk


def label_package_mix(gid: np.ndarray, packages: np.ndarray, n_labels: int, n_packages: int) -> np.ndarray:
    """(n_labels, n_packages) float32: each label's rows' share per package, P(package | label),
    over rows with one package (``packages`` ≥ 0); a label with none (mixtures) gets the uniform mix."""
    single = packages >= 0
    counts = np.zeros((n_labels, n_packages), np.float64)
    np.add.at(counts, (gid[single], packages[single]), 1.0)
    totals = counts.sum(axis=1, keepdims=True)
    mix = np.where(totals > 0, counts / np.maximum(totals, 1.0), 1.0 / n_packages)
    return mix.astype(np.float32)


def fit(
    model: EmbeddedClap,
    fs: FeatureSet,
    rows: np.ndarray,
    text: dict[str, np.ndarray],
    cfg: TrainConfig,
    progress: bool,
    items: list[CorpusItem] | None = None,
) -> list[float]:
    """Train the projection heads and temperature on ``rows`` of the cached features (and block 4's
    Δ when ``model`` is a :class:`Block4TunedClap` and ``fs`` holds block 3's maps), on the device
    ``model`` is on; the features stay in host memory and go over a batch at a time.
    ``items`` (the corpus ``fs`` indexes) is needed when ``cfg.package_adversary_weight`` > 0."""
    device = next(model.parameters()).device
    torch.manual_seed(cfg.seed)  # dropout masks
    rng = np.random.default_rng(cfg.seed)
    labels = [fs.labels[r] for r in rows]
    uniq = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(uniq)}
    gid = np.array([index[lab] for lab in labels])
    counts = np.bincount(gid)
    weights = 1.0 / counts[gid] ** cfg.balance_power
    weights = weights / weights.sum()
    caps = {lab: C.captions_for(lab) for lab in uniq}
    same = None
    if cfg.positive_similarity is not None:
        same = torch.from_numpy(similar_labels(uniq, text, cfg.positive_similarity)).to(device)
    x_all = torch.from_numpy(fs.features[rows])
    label_sent = None
    if cfg.label_softmax_weight > 0:
        label_sent = torch.from_numpy(label_sentences(uniq, text)).to(device)
        label_target = same.float() if same is not None else torch.eye(len(uniq), device=device)
        label_target = label_target / label_target.sum(dim=1, keepdim=True)
    if not cfg.residual_heads:
        with torch.no_grad():
            for head in (model.audio.proj, model.text_proj):
                head.linear3.weight.zero_()
                head.linear3.bias.zero_()
    for n, p in model.named_parameters():
        frozen = n.startswith("audio.cnn.")
        if not cfg.residual_heads and (".linear2." in n or ".linear3." in n):
            frozen = True  # the residual branch stays exactly zero
        p.requires_grad_(not frozen)
    params = [p for p in model.parameters() if p.requires_grad]
    adversary = None
    if cfg.package_adversary_weight > 0:
        if items is None:
            raise ValueError("package_adversary_weight > 0 needs the corpus items (the rows' packages)")
        packages = row_packages(fs, items, rows)
        n_packages = int(packages.max()) + 1
        adversary = torch.nn.Linear(model.cfg.dim, n_packages).to(device)
        params += list(adversary.parameters())
        pkg_all = torch.from_numpy(packages)
        prior = None  # uniform confusion: no per-label prior, the target is the uniform mix
        if cfg.package_adversary_by_label:
            label_mix = torch.from_numpy(label_package_mix(gid, packages, len(uniq), n_packages)).to(device)
            prior = torch.nn.Parameter(torch.zeros(len(uniq), n_packages, device=device))
            params.append(prior)
    opt = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    steps_per_epoch = max(1, len(rows) // cfg.batch_size)
    total = cfg.epochs * steps_per_epoch
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=cfg.lr, total_steps=total, pct_start=0.1)
    model.train()
    model.audio.cnn.eval()  # frozen: batch-norm statistics stay as shipped
    losses = []
    bar = tqdm(range(total), desc="train", unit="step", disable=not progress)
    for _ in bar:
        b = rng.choice(len(rows), size=cfg.batch_size, replace=False, p=weights)
        cap_text = [caps[labels[i]][rng.integers(len(caps[labels[i]]))] for i in b]
        t_in = torch.from_numpy(np.stack([text[c] for c in cap_text])).to(device)
        x = F.dropout(x_all[b].to(device), p=cfg.input_dropout, training=True)
        a = model.project_audio_features(x)
        t = model.project_text(t_in)
        scale = model.similarity_scale()
        logits = scale * a @ t.T
        g = torch.from_numpy(gid[b]).to(device)
        pos = (g[:, None] == g[None, :]) if same is None else same[g][:, g]
        pos = pos.float()
        target = pos / pos.sum(dim=1, keepdim=True)
        loss = 0.5 * (
            -(target * F.log_softmax(logits, dim=1)).sum(1).mean()
            - (target.T * F.log_softmax(logits.T, dim=1)).sum(1).mean()
        )
        if label_sent is not None:
            t_lab = model.project_text(label_sent)
            lab_logits = scale * a @ t_lab.T
            loss = loss - cfg.label_softmax_weight * (label_target[g] * F.log_softmax(lab_logits, dim=1)).sum(1).mean()
        if adversary is not None:
            pk = pkg_all[b].to(device)
            single = pk >= 0  # mixtures have no one package
            if single.any():
                a1, g1 = a[single], g[single]
                bias = prior[g1] if prior is not None else 0.0
                # The classifier learns from detached embeddings; the head learns, through the
                # classifier's detached weights, to leave it no better than a guess from the
                # target mix alone (uniform, or the row's label's package mix).
                loss = loss + F.cross_entropy(adversary(a1.detach()) + bias, pk[single])
                confused = F.linear(a1, adversary.weight.detach(), adversary.bias.detach())
                if prior is None:  # uniform: the mean log-probability (v7's exact arithmetic)
                    loss = loss - cfg.package_adversary_weight * F.log_softmax(confused, dim=1).mean()
                else:
                    confused = confused + bias.detach()
                    loss = loss - cfg.package_adversary_weight * (
                        label_mix[g1] * F.log_softmax(confused, dim=1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
        losses.append(loss.item())
        if len(losses) % 50 == 0:
            bar.set_postfix(loss=f"{np.mean(losses[-50:]):.3f}", temp=f"{1 / float(scale.detach()):.3f}")
    model.eval()
    return losses


@torch.no_grad()
def ensembled_text(model: EmbeddedClap, labels: list[str], text: dict[str, np.ndarray], ensemble: bool,
                   prototypes: SoundPrototypes | None = None) -> np.ndarray:
    """(K, dim) text embeddings of labels: the mean over caption templates when ``ensemble``,
    blended with ``prototypes`` as the encoder does at search time when given."""
    out = []
    for lab in labels:
        # The same generic templates the encoder applies to any query at search time.
        raw = torch.from_numpy(np.stack([text[p] for p in _prompts(lab, ensemble)]))
        out.append(F.normalize(model.project_text(raw).mean(0), dim=-1))
    emb = torch.stack(out)
    if prototypes is not None and prototypes.weight > 0:
        emb = prototypes.blend(lookup_sentences(labels, text, ensemble, prototypes), emb)
    return emb.numpy()


def _prompts(label: str, ensemble: bool) -> list[str]:
    return [tpl.format(label) for tpl in C.TEMPLATES] if ensemble else [label]


def lookup_sentences(labels: list[str], text: dict[str, np.ndarray], ensemble: bool,
                     prototypes: SoundPrototypes) -> torch.Tensor:
    """(K, 384) sentences that look ``labels`` up among the prototypes' keys, as the encoder does:
    each bare label, or the mean of its prompts."""
    bare = prototypes.looks_up_bare_text(ensemble)
    return torch.stack([torch.from_numpy(text[lab]) if bare
                        else torch.from_numpy(np.stack([text[p] for p in _prompts(lab, ensemble)])).mean(0)
                        for lab in labels])


def label_support(labels: list[str], text: dict[str, np.ndarray], ensemble: bool,
                  prototypes: SoundPrototypes | None) -> list:
    """Each label's exemplar support as the encoder finds it for that query (None: no support)."""
    if prototypes is None or not prototypes.has_support:
        return [None] * len(labels)
    return prototypes.support(lookup_sentences(labels, text, ensemble, prototypes))


@torch.no_grad()
def sound_prototypes(model: EmbeddedClap, fs: FeatureSet, items: list[CorpusItem], packages: set[str],
                     text: dict[str, np.ndarray], cfg: TrainConfig) -> SoundPrototypes:
    """Per label of ``packages``' sounds: key = unit mean MiniLM embedding of its captions,
    prototype = unit mean of its sounds' embeddings (each the mean of its plain windows)."""
    if not cfg.procedural_prototypes:
        packages = packages - {PROCEDURAL}
    sound_ids, audio = sound_embeddings(model, fs, _rows_in(fs, items, packages, (0,)))
    labels = [items[s].label for s in sound_ids]
    uniq = sorted(set(labels))
    index = {lab: i for i, lab in enumerate(uniq)}
    group = np.array([index[lab] for lab in labels])
    if cfg.prototype_package_balance:
        package = np.array([items[s].package for s in sound_ids])
        protos = np.stack([np.mean([audio[(group == i) & (package == p)].mean(0)
                                    for p in sorted(set(package[group == i]))], axis=0)
                           for i in range(len(uniq))])
    else:
        protos = np.stack([audio[group == i].mean(0) for i in range(len(uniq))])
    keys = label_sentences(uniq, text)
    exemplars = {}
    if cfg.exemplar_weight > 0:  # each sound's own embedding, and its label
        exemplars = {"exemplars": F.normalize(torch.from_numpy(audio).float(), dim=-1),
                     "exemplar_labels": torch.from_numpy(group).long(),
                     "exemplar_min_similarity": cfg.exemplar_min_similarity,
                     "exemplar_top_m": cfg.exemplar_top_m, "exemplar_weight": cfg.exemplar_weight,
                     "exemplar_fallback_similarity": cfg.exemplar_fallback_similarity}
        if cfg.exemplar_hub_weight > 0:
            exemplars.update({"exemplar_hubness": torch.from_numpy(hubness(exemplars["exemplars"].numpy(), cfg.exemplar_hub_k)),
                              "exemplar_hub_weight": cfg.exemplar_hub_weight, "exemplar_hub_k": cfg.exemplar_hub_k})
    aliases = {}
    if cfg.alias_min_similarity is not None:  # the words that named each label's files
        pairs = [(index[lab], w) for lab, words in alias_words(uniq, cfg.alias_action_words).items() for w in words]
        aliases = {"alias_keys": F.normalize(torch.from_numpy(np.stack([text[w] for _, w in pairs])).float(), dim=-1),
                   "alias_labels": torch.tensor([i for i, _ in pairs], dtype=torch.long),
                   "alias_words": [w for _, w in pairs], "alias_min_similarity": cfg.alias_min_similarity}
    return SoundPrototypes(F.normalize(torch.from_numpy(keys).float(), dim=-1),
                           F.normalize(torch.from_numpy(protos).float(), dim=-1), uniq,
                           cfg.prototype_temperature, cfg.prototype_top_k, cfg.prototype_weight,
                           cfg.prototype_min_similarity, cfg.prototype_bare_lookup, **exemplars, **aliases)


@torch.no_grad()
def sound_embeddings(model: EmbeddedClap, fs: FeatureSet, rows: np.ndarray,
                     per_window: bool = False) -> tuple[list[int], np.ndarray]:
    """One unit-norm embedding per sound of ``rows`` (the mean of its windows): (sorted sound
    indices, (S, dim) embeddings in that order). ``per_window``: the rows' own unit-norm
    embeddings instead, (len(rows), dim) in the order of ``rows``."""
    emb = model.project_audio_features(torch.from_numpy(fs.features[rows])).numpy()
    sound_of = fs.item[rows]
    sound_ids = sorted({int(i) for i in sound_of})
    if per_window:
        return sound_ids, emb / np.linalg.norm(emb, axis=1, keepdims=True)
    audio = np.stack([emb[sound_of == s].mean(0) for s in sound_ids])
    return sound_ids, audio / np.linalg.norm(audio, axis=1, keepdims=True)


@torch.no_grad()
def measure(
    model: EmbeddedClap,
    fs: FeatureSet,
    items: list[CorpusItem],
    val_packages: set[str],
    text: dict[str, np.ndarray],
    ensemble: bool,
    prototypes: SoundPrototypes | None = None,
    support: bool = True,
) -> RetrievalMetrics:
    """Validation figures: one embedding per held-out sound (mean of its plain windows); the
    prototypes' exemplar support joins the category scores unless ``support`` is False."""
    model.eval()
    sound_ids, audio = sound_embeddings(model, fs, _rows_in(fs, items, val_packages, (0,)))
    labels = [items[s].label for s in sound_ids]
    cats = sorted(set(labels))
    cat_emb = ensembled_text(model, cats, text, ensemble, prototypes)
    cap_texts = [c for lab in cats for c in C.captions_for(lab)]
    cap_labels = [lab for lab in cats for _ in C.captions_for(lab)]
    cap_emb = model.project_text(torch.from_numpy(np.stack([text[c] for c in cap_texts]))).numpy()
    extra = support_matrix(audio, label_support(cats, text, ensemble, prototypes)) if support else None
    return evaluate(audio, labels, cat_emb, cats, cap_emb, cap_labels, extra)


def _new_model(model_cfg: ModelConfig, cnn_state: dict, seed: int, block4_scale: float = 0.0) -> EmbeddedClap:
    """A model with aiSFX's CNN and heads initialised from ``seed``; with ``block4_scale`` > 0 one
    that trains block 4 from block-3 maps (:class:`Block4TunedClap`)."""
    torch.manual_seed(seed)
    model = Block4TunedClap(model_cfg, block4_scale) if block4_scale > 0 else EmbeddedClap(model_cfg)
    load_aisfx_cnn(model.audio.cnn, cnn_state)
    return model.eval()


def train_on(cfg: TrainConfig, cnn_state: dict, fs: FeatureSet, items: list[CorpusItem], text: dict[str, np.ndarray],
             packages: set[str], train_fs: FeatureSet | None = None, device: str = "cpu",
             progress: bool = False) -> tuple[EmbeddedClap, SoundPrototypes, int]:
    """``cfg``'s model trained on the rows of ``packages`` (a split's, or every package but a held-out
    one), with the sound prototypes of those packages' sounds, and the number of rows it trained on.

    ``fs`` picks the rows; the model reads ``train_fs`` (block 3's maps for a recipe that tunes
    block 4; default ``fs``). The model is returned on the CPU.
    """
    train_fs = fs if train_fs is None else train_fs
    model = _new_model(cfg.model_config(), cnn_state, cfg.seed, cfg.block4_scale)
    rows = _rows_in(fs, items, cfg.fit_packages(packages), cfg.row_kinds())
    fit(model.to(device), train_fs, rows, text, cfg, progress, items)
    model.cpu()
    return model, sound_prototypes(model, train_fs, items, packages, text, cfg), len(rows)


def block3_maps(items: list[CorpusItem], tower, maps_dir: Path, fs: FeatureSet, cfg: TrainConfig,
                progress: bool) -> FeatureSet:
    """Block 3's output maps (float16) for exactly the rows of ``fs``, cached under ``maps_dir``:
    the input of a model that tunes block 4 (``cfg.block4_scale`` > 0)."""
    maps = compute_features(items, tower, maps_dir, extract=Block3Maps(tower), seed=cfg.seed,
                            max_windows=cfg.max_windows, pitch_prob=cfg.pitch_prob, n_mixes=cfg.n_mixes,
                            acoustic_views=cfg.acoustic_views, progress=progress)
    if not (np.array_equal(maps.item, fs.item) and np.array_equal(maps.kind, fs.kind) and maps.labels == fs.labels):
        raise TrainingError(f"the block-3 maps cached in {maps_dir} are not for the same rows as the CNN features: "
                            f"delete that folder and run again")
    return maps


def train_encoder(
    out_dir: str | Path,
    cache_dir: str | Path,
    seed: int = 0,
    epochs: int = 40,
    progress: bool = True,
    config: TrainConfig | None = None,
) -> TrainReport:
    """Rebuild corpus, features and model; write ``out_dir/embedded-clap.pt`` and ``metrics.json``.

    The GPU, when one is present, computes the CNN features (and block-3 maps) and trains; the
    models are measured and saved on the CPU. Re-runs reuse the cached corpus, features and caption
    embeddings under ``cache_dir``.
    """
    cfg = config or TrainConfig(seed=seed, epochs=epochs)
    torch.set_num_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    cache = Path(cache_dir)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    model_cfg = cfg.model_config()

    items = build_corpus(cache, tuple(cfg.packages), procedural_variants=cfg.procedural_variants,
                         procedural_generators=cfg.procedural_generators)
    cnn_state = aisfx_checkpoint(cache)
    device = "cuda" if torch.cuda.is_available() else "cpu"
    feat_model = _new_model(model_cfg, cnn_state, cfg.seed).to(device)
    fs = compute_features(
        items, feat_model.audio, cache, seed=cfg.seed, max_windows=cfg.max_windows,
        pitch_prob=cfg.pitch_prob, n_mixes=cfg.n_mixes, acoustic_views=cfg.acoustic_views, progress=progress,
    )
    # The trained models read train_fs: the pooled features, or block 3's maps when block 4 trains.
    # The baseline (untrained projection) reads the pooled features either way.
    train_fs = fs
    if cfg.block4_scale > 0:
        train_fs = block3_maps(items, feat_model.audio, cache / "block3-maps", fs, cfg, progress)
    all_labels = sorted(set(fs.labels))
    text = text_embeddings(all_labels, all_labels, cache, progress)

    packages = {it.package for it in items}
    val = set(cfg.val_packages) & packages
    train_pk = packages - val
    report = TrainReport(weights_path=str(out / WEIGHTS_NAME), n_sounds=len(items), n_train_rows=0, config=asdict(cfg))

    # 1) validation split: train on train packages, measure on held-out packages.
    baseline = _new_model(model_cfg, cnn_state, cfg.seed)
    model, protos, n_rows = train_on(cfg, cnn_state, fs, items, text, train_pk, train_fs, device, progress)
    results = {}
    for ens in (False, True):
        results[ens] = measure(model, train_fs, items, val, text, ens, protos)
    if cfg.prompt_ensemble == "choose":
        best = max(results, key=lambda e: (results[e].zero_shot_top1 + results[e].t2a_map10, e))
    else:
        best = cfg.prompt_ensemble == "on"
    report.prompt_ensemble = bool(best)
    report.validation = {
        "model": results[best].to_dict(),
        "model_without_prompt_ensemble": results[False].to_dict(),
        "model_with_prompt_ensemble": results[True].to_dict(),
        "model_without_exemplar_support": measure(model, train_fs, items, val, text, best, protos,
                                                  support=False).to_dict(),
        "model_without_sound_prototypes": measure(model, train_fs, items, val, text, best).to_dict(),
        "baseline_untrained_projection": measure(baseline, fs, items, val, text, best).to_dict(),
        "chance": chance(
            [items[i].label for i in sorted({int(fs.item[r]) for r in _rows_in(fs, items, val, (0,))})],
            sorted({items[int(fs.item[r])].label for r in _rows_in(fs, items, val, (0,))}),
            [lab for lab in sorted({items[int(fs.item[r])].label for r in _rows_in(fs, items, val, (0,))})
             for _ in C.captions_for(lab)],
        ).to_dict(),
        "val_packages": sorted(val),
        "train_packages": sorted(train_pk),
    }

    # 2) shipped model: same settings on all packages, or the validation-split model itself.
    if cfg.final_on_all_packages:
        final, protos, report.n_train_rows = train_on(cfg, cnn_state, fs, items, text, packages, train_fs, device,
                                                      progress)
    else:
        final = model
        report.n_train_rows = n_rows
    if isinstance(final, Block4TunedClap):
        final = final.folded()  # block 4's Δ goes into the CNN: the checkpoint is a plain model's
    save_weights(final, out / WEIGHTS_NAME, prompt_ensemble=report.prompt_ensemble, train_config=asdict(cfg),
                 prototypes=protos if cfg.prototype_weight > 0 else None)
    metrics = json.dumps(asdict(report), indent=2, default=str) + "\n"
    atomic_write(out / "metrics.json", lambda tmp: tmp.write_text(metrics))
    return report


def save_atomically(payload: dict, path: Path) -> None:
    """``torch.save(payload, path)`` written whole or not at all (an interrupted save leaves the old
    file). torch.save names the archive inside the file after the file itself, so the temporary
    file is saved under the final name in a temporary folder beside it: the bytes are those of a
    direct save, which the model card's reproduction check compares."""
    def write(tmp: Path) -> None:
        folder = tmp.with_name(tmp.name + ".d")
        folder.mkdir()
        try:
            torch.save(payload, folder / path.name)
            (folder / path.name).replace(tmp)
        finally:
            shutil.rmtree(folder, ignore_errors=True)

    atomic_write(path, write)


def save_weights(model: EmbeddedClap, path: Path, prompt_ensemble: bool, train_config: dict,
                 prototypes: SoundPrototypes | None = None) -> None:
    """Write the shipped checkpoint: config + float32 state dict (CNN, both heads, temperature),
    and the query-time sound prototypes when given."""
    state = {k: v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    payload = {
        "format": "earmark-embedded-clap/1",
        "config": model.cfg.to_dict(),
        "prompt_ensemble": prompt_ensemble,
        "templates": list(C.TEMPLATES),
        "train_config": json.loads(json.dumps(train_config, default=str)),
        "state": state,
    }
    if prototypes is not None:
        payload["sound_prototypes"] = prototypes.to_payload()
    save_atomically(payload, path)
