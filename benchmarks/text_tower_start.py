"""Cold start of the embedded encoder's text tower: the cached trace against transformers.

Each measurement is a fresh Python process that loads MiniLM and embeds one sentence, the way the
first query of an `earmark search` does: earmark's SentenceEncoder (traced module from the user
cache, tokenizer.json through `tokenizers`; the cache is warmed first) against the baseline of
building the model with transformers (AutoModel + AutoTokenizer, what earmark did until
2026-12-06). Prints the median seconds of each and their ratio.

    python benchmarks/text_tower_start.py --runs 5
"""
from __future__ import annotations

import argparse
import statistics
import subprocess
import sys

EARMARK = """
import time; t = time.perf_counter()
import torch
from earmark.engine.encoders.embedded_model import SentenceEncoder, minilm_dir
with torch.no_grad():
    SentenceEncoder(minilm_dir())(["a dog barking"])
print(time.perf_counter() - t)
"""

TRANSFORMERS = """
import time; t = time.perf_counter()
import torch
from transformers import AutoModel, AutoTokenizer
from transformers.utils import logging; logging.disable_progress_bar()
from earmark.engine.encoders.embedded_model import minilm_dir
d = minilm_dir()
model = AutoModel.from_pretrained(d, local_files_only=True).eval()
tok = AutoTokenizer.from_pretrained(d, local_files_only=True)
with torch.no_grad():
    model(**tok(["a dog barking"], return_tensors="pt"))
print(time.perf_counter() - t)
"""


def seconds(code: str) -> float:
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", code], capture_output=True, text=True, check=True)
    return float(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    args = ap.parse_args()
    seconds(EARMARK)  # warms the cache (traces MiniLM once when it is cold)
    ours, base = [], []
    for _ in range(args.runs):  # interleaved, so a busy moment hits both alike
        ours.append(seconds(EARMARK))
        base.append(seconds(TRANSFORMERS))
    a, b = statistics.median(ours), statistics.median(base)
    print("| text tower, fresh process (load + one sentence) | median s | runs |\n|---|---|---|")
    print(f"| earmark: cached trace + tokenizers | {a:.2f} | {', '.join(f'{x:.2f}' for x in ours)} |")
    print(f"| baseline: transformers AutoModel + AutoTokenizer | {b:.2f} | {', '.join(f'{x:.2f}' for x in base)} |")
    print(f"\nratio earmark / baseline = {a / b:.2f}")


if __name__ == "__main__":
    main()
