"""docs/benchmarks.md: the embedded encoder, dense against concept codes, on two package splits.

Sets (each a corpus manifest written under ``--cache``, sounds labelled exactly as the training
corpus labels them, engine/training/corpus.py; packages fetched with apt-get download and
dpkg-deb -x, reused when already there):

- ``validation``: the validation packages of engine/training/train.py VAL_PACKAGES, read with
  ``--split val``. NOTE: the shipped weights (commit 64c2aea) were retrained on all packages,
  these included, so for the shipped model this set is *not* held out.
- ``unseen``: the packages of corpus.DEBIAN_PACKAGES that the shipped checkpoint's own
  ``train_config["packages"]`` does not list: sounds the shipped weights never saw.

For each set, in this process and with one torch thread:

    earmark bench classify MANIFEST --format manifest --split SPLIT --encoder embedded \
        --vocabulary baseline --vocabulary pruned --vocabulary clustered \
        --lam 0.05 --lam 0.15 --lam 0.25 --seed 0 --cache BENCH_CACHE --out OUT --adapter
    earmark bench retrieve MANIFEST (the same options, without --adapter)

(folds = source packages: the adapter is trained on the other packages, evaluated on one), then
one Markdown table per set (the ones in docs/benchmarks.md).

    python benchmarks/validation.py --cache /work/cache/corpus --out docs/benchmarks
"""
from __future__ import annotations

import argparse
import json
import os
import sys
from dataclasses import asdict
from pathlib import Path

from earmark.engine.user_cache import cache_root


def shipped_training_packages() -> list[str]:
    """The Debian packages the shipped embedded weights were trained on (from the checkpoint)."""
    import torch

    from earmark.engine.encoders.embedded import shipped_weights_path

    payload = torch.load(shipped_weights_path(), map_location="cpu", weights_only=True)
    return list(payload["train_config"]["packages"])


def build_manifest(cache: Path, name: str, packages: list[str], max_per_package: int | None) -> Path:
    """Write <cache>/<name>/manifest.jsonl with the labelled sounds of ``packages``."""
    from earmark.engine.training.corpus import fetch_package, label_package

    out = cache / name / "manifest.jsonl"
    lines = []
    for package in packages:
        items = label_package(package, fetch_package(package, cache))
        lines += [json.dumps(asdict(it)) for it in items[:max_per_package]]
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("\n".join(lines) + "\n")
    return out


def main(argv: list[str] | None = None) -> int:
    from earmark.engine.window_pooling import DEFAULT_POOLING, POOLINGS

    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--cache", type=Path, default=cache_root() / "corpus",
                    help="corpus cache: downloaded .deb files and unpacked packages")
    ap.add_argument("--bench-cache", type=Path, default=cache_root() / "bench")
    ap.add_argument("--out", type=Path, default=Path("docs/benchmarks"))
    ap.add_argument("--max-per-package", type=int, default=None, help="use only the first N files of each package")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--sets", default="validation,unseen", help="comma-separated: validation, unseen")
    ap.add_argument("--clip-pooling", choices=POOLINGS, default=DEFAULT_POOLING,
                    help="bench's --clip-pooling (the recorded docs/benchmarks runs predate it: mean)")
    ap.add_argument("--prompt", action="append", default=[],
                    help="bench classify's --prompt, repeatable (default: the encoder's own; the recorded "
                         "docs/benchmarks runs used 'This is a sound of {}')")
    args = ap.parse_args(argv)

    os.environ.setdefault("OMP_NUM_THREADS", str(args.threads))
    import torch

    torch.set_num_threads(args.threads)
    from earmark.cli import main as earmark
    from earmark.engine.bench.report import BenchResult, BenchRow, format_table

    from earmark.engine.training.corpus import DEBIAN_PACKAGES
    from earmark.engine.training.train import VAL_PACKAGES

    trained = shipped_training_packages()
    sets = {"validation": (list(VAL_PACKAGES), "val"),
            "unseen": ([p for p in DEBIAN_PACKAGES if p not in trained], "all")}
    common = ["--format", "manifest", "--encoder", "embedded", "--vocabulary", "baseline",
              "--vocabulary", "pruned", "--vocabulary", "clustered", "--lam", "0.05", "--lam", "0.15",
              "--lam", "0.25", "--seed", "0", "--cache", str(args.bench_cache), "--out", str(args.out),
              "--clip-pooling", args.clip_pooling]
    for name in args.sets.split(","):
        packages, split = sets[name]
        manifest = build_manifest(args.cache, f"{name}-packages", packages, args.max_per_package)
        results = []
        prompts = [a for p in args.prompt for a in ("--prompt", p)]
        for task, extra in (("classify", ["--adapter", *prompts]), ("retrieve", [])):
            code = earmark.main(["bench", task, str(manifest), "--split", split, *common, *extra],
                                standalone_mode=False)
            if code:
                return int(code)
            data = json.loads((args.out / f"{task}-{name}-packages-{split}.json").read_text())
            rows = [BenchRow(**{k: v for k, v in r.items() if k != "label"}) for r in data.pop("rows")]
            results.append(BenchResult(rows=rows, **data))
        print(f"\n{name}: {', '.join(packages)}\n" + format_table(results))
    return 0


if __name__ == "__main__":
    sys.exit(main())
