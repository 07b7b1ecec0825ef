"""Fresh-process time of the store-only commands (`status`, `ls`, `check`, `backend status`): earmark against a
baseline revision, side by side.

Each measurement is a new Python process that runs one command on the same library, the way a
user types it. The baseline is an earlier revision of earmark (default 5e31d5e, before these
commands stopped importing torch), unpacked with `git archive` and put first on PYTHONPATH, so
both sides run on the same machine, library and interpreter. Prints the median seconds of each,
their ratio, and whether torch was imported. The library is the demo library (built in a
temporary folder unless ``--library`` names one on the current embedded weights).

    python benchmarks/cli_start.py --runs 5
"""
from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
COMMANDS = (["status"], ["ls"], ["check"], ["backend", "status"])
RUN = """
import sys, time; t = time.perf_counter()
from earmark.cli import main
try:
    main(sys.argv[2:] + ["--library", sys.argv[1]], standalone_mode=False)
except SystemExit:
    pass
print(time.perf_counter() - t, "torch" in sys.modules, file=sys.stderr)
"""


def seconds(library: str, command: list[str], pythonpath: str | None) -> tuple[float, bool]:
    env = dict(os.environ)
    if pythonpath:
        env["PYTHONPATH"] = pythonpath
    out = subprocess.run([sys.executable, "-W", "ignore", "-c", RUN, library, *command], capture_output=True,
                         text=True, check=True, env=env)
    took, torch = out.stderr.strip().splitlines()[-1].split()
    return float(took), torch == "True"


def baseline_tree(rev: str, into: Path) -> str:
    """``rev`` of this repository unpacked as an importable ``earmark`` package under ``into``."""
    pkg = into / "earmark"
    pkg.mkdir(parents=True)
    archive = subprocess.run(["git", "-C", str(REPO), "archive", rev], capture_output=True, check=True).stdout
    subprocess.run(["tar", "-x", "-C", str(pkg)], input=archive, check=True)
    return str(into)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--runs", type=int, default=5)
    ap.add_argument("--baseline", default="5e31d5e", help="git revision to compare against")
    ap.add_argument("--library", help="a library to run the commands on (default: a fresh demo library)")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        library = args.library
        if library is None:
            from earmark.engine.demo import run_demo

            library = str(run_demo(tmp, queries=["rain"]).library)
        base_path = baseline_tree(args.baseline, Path(tmp) / "baseline")
        print(f"| command, fresh process | earmark median s | baseline {args.baseline} median s | ratio | "
              "torch imported (earmark, baseline) |\n|---|---|---|---|---|")
        for command in COMMANDS:
            seconds(library, command, None)  # warm the page cache for both
            ours, base, torch_ours, torch_base = [], [], False, False
            for _ in range(args.runs):  # interleaved, so a busy moment hits both alike
                s, torch_ours = seconds(library, command, None)
                ours.append(s)
                s, torch_base = seconds(library, command, base_path)
                base.append(s)
            a, b = statistics.median(ours), statistics.median(base)
            print(f"| `earmark {' '.join(command)}` | {a:.2f} | {b:.2f} | {a / b:.2f} | {torch_ours}, {torch_base} |")


if __name__ == "__main__":
    main()
