"""Query-time sound prototypes: a text query borrows the audio of the training labels it names.

The projection heads map MiniLM sentence embeddings into the audio space, but they learn that
map from only a few hundred training labels, and a query about a category the corpus holds
few clean examples of lands far from its sounds. The embedded encoder therefore also ships,
per training label, the label's sentence embedding (its key) and the mean audio embedding of
its training sounds (its prototype). A query's text embedding is blended with the prototypes of
the labels whose keys are nearest its own sentence embedding:

    w = softmax(cos(query, key_l) / τ) over the k nearest labels with cos(query, key_l) ≥ g
    t = normalise(normalise(head(query)) + β · normalise(Σ_l w_l · prototype_l))

Only labels whose key reaches g join the blend, and a query no label's key reaches is the head
alone: borrowing the sounds of unrelated labels (ungated, "laughter" borrows from "a punch")
pulls a query towards the wrong audio, which the softmax alone cannot refuse because its
weights always sum to one.
Measured on the everyday-category benchmark (leave-one-package-out, docs/model-card.md); τ, k,
β and g are recorded in the checkpoint. Nothing here looks at the sounds being searched: the
prototypes are fixed at training time from the training corpus.

Since v12 the checkpoint also keeps the labelled training sounds themselves (the *exemplars*,
one unit embedding per sound). A mean prototype blurs a label whose sounds differ (footsteps on
gravel, on wood, on metal); a query's *support* is every exemplar of the labels whose key
reaches the exemplar gate g_e, and a sound scores, on top of its cosine with the query vector,

    λ · mean of its m highest cosines with the support's exemplars

so it only has to resemble a few of the sounds the query names, not their average (a kNN read
of the training corpus, as Tip-Adapter and SuS-X read a labelled support set). The support term
ranks (search, `bench classify`); it changes no embedding, so the encoder's fingerprint, the
library's vectors and concept codes do not depend on it.

Since v13 a label may also be reached through *alias keys*: the words that named its training
files (engine/training/label_words.py: "dog" for "a dog barking", "gun" for "a gunshot"). A
one-word query sits far from a label's multi-word captions in MiniLM's space ("dog" reaches "a
dog barking" at 0.51, under the gate) though it is the very word the corpus labelled the sounds
by. A label whose alias the query's sentence reaches at a_g (near-identical words) passes both
gates; the blend's weights stay the cosines with the labels' own keys, so an alias decides which
labels a query names, not how much each counts, and queries that reach their labels without an
alias blend exactly as before. Since v14 the aliases also hold each label's own action words
("screaming" for "a man screaming in pain"), and the support is corrected for hubness: each
exemplar's cosines count less α × its mean cosine with its K nearest fellow exemplars
(exemplar_support's docstring).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .exemplar_support import QuerySupport


@dataclass
class SoundPrototypes:
    """Per training label: unit sentence-embedding key (L, 384) and unit audio prototype (L, dim)."""

    keys: torch.Tensor
    prototypes: torch.Tensor
    labels: list[str]
    temperature: float
    top_k: int
    weight: float
    # Key cosine a label needs to join a query's blend; -1 (every label passes) in checkpoints
    # written before the gate existed, so they keep scoring as they did.
    min_similarity: float = -1.0
    # Which sentence of a query looks the labels up when the encoder ensembles prompts: its bare
    # text (True) or the mean of its templated prompts (False, checkpoints written before this
    # field, which keep scoring as they did). Templating both sides pulls every query and key
    # towards the templates' shared wording: the blend weights flatten ("fire" borrows fireworks
    # and machine-gun fire) and speech labels, whose captions use their own templates, drift out
    # of reach of "speech" (docs/model-card.md, v11).
    bare_lookup: bool = False
    # The labelled training sounds (v12; None before): (N, dim) unit embeddings and (N,) each one's
    # label index. A query's support is every exemplar of the labels whose key cosine reaches
    # exemplar_min_similarity; exemplar_weight 0 turns the support term off.
    exemplars: torch.Tensor | None = None
    exemplar_labels: torch.Tensor | None = None
    exemplar_min_similarity: float = 0.6
    exemplar_top_m: int = 3
    exemplar_weight: float = 0.0
    # A query none of whose labels reaches exemplar_min_similarity takes its nearest label's
    # exemplars when that key reaches this: a one-word query sits lower against multi-word keys
    # ("chicken" reaches "a chicken clucking" at 0.54) and would otherwise get no term while the
    # categories it is compared with do. 1.0: no fallback.
    exemplar_fallback_similarity: float = 1.0
    # (N,) each exemplar's hubness (v14; None before): its mean cosine with its exemplar_hub_k nearest
    # fellow exemplars (exemplar_support.hubness). A sound's cosine with an exemplar counts less
    # exemplar_hub_weight × that, so exemplars in crowded parts of the corpus, near many sounds of
    # every kind, count for less than distinctive ones (CSLS; exemplar_support's docstring).
    exemplar_hubness: torch.Tensor | None = None
    exemplar_hub_weight: float = 0.0
    exemplar_hub_k: int = 0
    # The words that named the labels' training files (v13; None before): (A, 384) unit sentence
    # embeddings, (A,) each one's label index, and the words. A lookup sentence that reaches a word
    # at alias_min_similarity reaches its label (see the module docstring).
    alias_keys: torch.Tensor | None = None
    alias_labels: torch.Tensor | None = None
    alias_words: list[str] | None = None
    alias_min_similarity: float = 0.8

    def __post_init__(self) -> None:
        if self.keys.ndim != 2 or self.prototypes.ndim != 2 or len(self.keys) != len(self.prototypes):
            raise ValueError("keys and prototypes must be (L, ·) with the same L")
        if len(self.labels) != len(self.keys):
            raise ValueError("one label per key")
        if self.temperature <= 0 or self.top_k < 1 or self.weight < 0:
            raise ValueError("temperature > 0, top_k ≥ 1 and weight ≥ 0 are required")
        if not -1.0 <= self.min_similarity <= 1.0:
            raise ValueError(f"min_similarity must be a cosine in [-1, 1], got {self.min_similarity}")
        if (self.exemplars is None) != (self.exemplar_labels is None):
            raise ValueError("exemplars and exemplar_labels come together")
        if self.exemplars is not None:
            lab = self.exemplar_labels
            if self.exemplars.ndim != 2 or lab.ndim != 1 or len(lab) != len(self.exemplars):
                raise ValueError("exemplars must be (N, dim) with one label index each")
            if self.exemplars.shape[1] != self.prototypes.shape[1]:
                raise ValueError("exemplars and prototypes must have the same dimension")
            if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= len(self.labels)):
                raise ValueError("exemplar label indices must index labels")
            if self.exemplar_hubness is not None and self.exemplar_hubness.shape != (len(self.exemplars),):
                raise ValueError("exemplar_hubness must hold one value per exemplar")
        elif self.exemplar_hubness is not None:
            raise ValueError("exemplar_hubness needs exemplars")
        if self.exemplar_hub_weight < 0 or (self.exemplar_hub_weight > 0 and self.exemplar_hubness is None):
            raise ValueError("exemplar_hub_weight must be ≥ 0, and above 0 only with exemplar_hubness")
        if self.exemplar_top_m < 1 or self.exemplar_weight < 0:
            raise ValueError("exemplar_top_m ≥ 1 and exemplar_weight ≥ 0 are required")
        if (self.alias_keys is None) != (self.alias_labels is None):
            raise ValueError("alias_keys and alias_labels come together")
        if self.alias_keys is not None:
            lab = self.alias_labels
            if self.alias_keys.ndim != 2 or self.alias_keys.shape[1] != self.keys.shape[1]:
                raise ValueError("alias_keys must be (A, d) with the keys' d")
            if lab.ndim != 1 or len(lab) != len(self.alias_keys):
                raise ValueError("one label index per alias key")
            if len(lab) and (int(lab.min()) < 0 or int(lab.max()) >= len(self.labels)):
                raise ValueError("alias label indices must index labels")
            if self.alias_words is not None and len(self.alias_words) != len(lab):
                raise ValueError("one word per alias key")
        for name in ("exemplar_min_similarity", "exemplar_fallback_similarity", "alias_min_similarity"):
            if not -1.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must be a cosine in [-1, 1], got {getattr(self, name)}")

    def looks_up_bare_text(self, ensembled: bool) -> bool:
        """Whether a query looks the keys up by its bare text rather than by its prompts' mean
        (the two are the same sentence when the encoder does not ensemble prompts)."""
        return ensembled and self.bare_lookup

    def _reach(self, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, L) cosines of (B, 384) lookup sentences with the labels' keys, and how near each
        label is reached: that cosine, raised to the best of the label's alias cosines that pass
        the alias gate (the same tensor when the checkpoint has no aliases)."""
        unit = F.normalize(sentence, dim=-1)
        sim = unit @ self.keys.to(unit.device, unit.dtype).T
        if self.alias_keys is None or len(self.alias_keys) == 0:
            return sim, sim
        alias = unit @ self.alias_keys.to(unit.device, unit.dtype).T
        alias = alias.masked_fill(alias < self.alias_min_similarity, -1.0)
        index = self.alias_labels.to(unit.device).expand(len(unit), -1)
        best = torch.full_like(sim, -1.0).scatter_reduce(1, index, alias, "amax")
        return sim, torch.maximum(sim, best)

    def _weights(self, sentence: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """(B, k) softmax weights over each query's k nearest labels that pass the gate (0 for the
        rest; a row of zeros when none passes), and those labels' indices. Labels are ranked and
        gated by their reach, weighted by their keys' cosines."""
        sim, reach = self._reach(sentence)
        top, idx = reach.topk(min(self.top_k, reach.shape[1]), dim=1)
        passed = top >= self.min_similarity
        logits = (sim.gather(1, idx) / self.temperature).masked_fill(~passed, float("-inf"))
        any_passed = passed.any(dim=1, keepdim=True)
        # softmax of an all -inf row is NaN: give such rows finite logits, then zero them
        w = torch.softmax(logits.masked_fill(~any_passed, 0.0), dim=1) * any_passed
        return w, idx

    def blend(self, sentence: torch.Tensor, projected: torch.Tensor) -> torch.Tensor:
        """(B, 384) sentence embeddings and (B, dim) projected text → (B, dim) unit embeddings."""
        w, idx = self._weights(sentence)
        protos = self.prototypes.to(projected.device, projected.dtype)
        proto = F.normalize((w.unsqueeze(-1) * protos[idx]).sum(1), dim=-1)  # a zero row stays zero
        return F.normalize(F.normalize(projected, dim=-1) + self.weight * proto, dim=-1)

    @property
    def has_support(self) -> bool:
        """Whether queries get a support term (exemplars shipped and a weight above 0)."""
        return self.exemplars is not None and self.exemplar_weight > 0

    def support(self, sentence: torch.Tensor) -> list[QuerySupport | None]:
        """Per (384,) lookup sentence of (B, 384): the exemplars of every label whose key cosine
        reaches the exemplar gate (else of the nearest label, when it reaches the fallback), or None
        when none does (or the checkpoint has no exemplars)."""
        if not self.has_support:
            return [None] * len(sentence)
        sim = self._reach(sentence.detach().float().cpu())[1]
        out: list[QuerySupport | None] = []
        for row in sim:
            gate = self.exemplar_min_similarity
            if float(row.max()) < gate:
                gate = max(float(row.max()), self.exemplar_fallback_similarity)  # the nearest label alone
            chosen = torch.nonzero(row[self.exemplar_labels] >= gate).flatten()
            if len(chosen) == 0:
                out.append(None)
                continue
            offsets = (self.exemplar_hub_weight * self.exemplar_hubness[chosen].float()).numpy() \
                if self.exemplar_hub_weight > 0 else None
            out.append(QuerySupport(self.exemplars[chosen].float().numpy(),
                                    [self.labels[int(i)] for i in self.exemplar_labels[chosen]],
                                    self.exemplar_top_m, self.exemplar_weight, offsets))
        return out

    def nearest_labels(self, sentence: torch.Tensor, n: int = 5) -> list[list[tuple[str, float]]]:
        """The training labels a query borrows from most, heaviest first, with their blend weights
        (for explanations); labels below the gate are left out, so a query that borrows nothing gets
        an empty list. (Labels come out of the lookup ordered by reach, which an alias word can
        raise above a heavier label's.)"""
        w, idx = self._weights(sentence.detach())
        out = []
        for ri, rw in zip(idx, w):
            order = torch.argsort(rw, descending=True, stable=True)[:n]
            out.append([(self.labels[int(ri[j])], float(rw[j])) for j in order if rw[j] > 0])
        return out

    def to_payload(self) -> dict:
        """Checkpoint form (float32 tensors, plain values; the exemplars in float16, half the
        bytes, as their cosines need no more)."""
        d = {"keys": self.keys.float().contiguous(), "prototypes": self.prototypes.float().contiguous(),
             "labels": list(self.labels), "temperature": float(self.temperature),
             "top_k": int(self.top_k), "weight": float(self.weight),
             "min_similarity": float(self.min_similarity), "bare_lookup": bool(self.bare_lookup)}
        if self.exemplars is not None:
            d["exemplars"] = {"vectors": self.exemplars.half().contiguous(),
                              "labels": self.exemplar_labels.long().contiguous(),
                              "min_similarity": float(self.exemplar_min_similarity),
                              "top_m": int(self.exemplar_top_m), "weight": float(self.exemplar_weight),
                              "fallback_similarity": float(self.exemplar_fallback_similarity)}
            if self.exemplar_hubness is not None:
                d["exemplars"].update({"hubness": self.exemplar_hubness.float().contiguous(),
                                       "hub_weight": float(self.exemplar_hub_weight),
                                       "hub_k": int(self.exemplar_hub_k)})
        if self.alias_keys is not None:
            d["aliases"] = {"keys": self.alias_keys.float().contiguous(), "labels": self.alias_labels.long().contiguous(),
                            "words": list(self.alias_words or []), "min_similarity": float(self.alias_min_similarity)}
        return d

    @classmethod
    def from_payload(cls, d: dict) -> "SoundPrototypes":
        ex = d.get("exemplars")
        extra = {}
        if ex is not None:
            extra = {"exemplars": ex["vectors"].float(), "exemplar_labels": ex["labels"].long(),
                     "exemplar_min_similarity": float(ex["min_similarity"]), "exemplar_top_m": int(ex["top_m"]),
                     "exemplar_weight": float(ex["weight"]),
                     "exemplar_fallback_similarity": float(ex.get("fallback_similarity", 1.0))}
            if "hubness" in ex:
                extra.update({"exemplar_hubness": ex["hubness"].float(), "exemplar_hub_weight": float(ex["hub_weight"]),
                              "exemplar_hub_k": int(ex["hub_k"])})
        al = d.get("aliases")
        if al is not None:
            extra.update({"alias_keys": al["keys"].float(), "alias_labels": al["labels"].long(),
                          "alias_words": list(al["words"]) or None, "alias_min_similarity": float(al["min_similarity"])})
        return cls(d["keys"].float(), d["prototypes"].float(), list(d["labels"]), float(d["temperature"]),
                   int(d["top_k"]), float(d["weight"]), float(d.get("min_similarity", -1.0)),
                   bool(d.get("bare_lookup", False)), **extra)
