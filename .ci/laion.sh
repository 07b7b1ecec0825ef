#!/usr/bin/env bash
# CI for the laion encoder backend: laion-clap pins numpy<2, so it gets its own virtualenv and
# only the tests marked @pytest.mark.laion run there. Run from the repository root, after the
# main environment exists. Idempotent: a second run reuses the environment (a stamp file records
# what was installed) and only re-runs the tests.
#   env: EARMARK_LAION_VENV (default .venv-laion)
set -euo pipefail
cd "$(dirname "$0")/.."

VENV="${EARMARK_LAION_VENV:-.venv-laion}"
# torch stays the local CPU wheel: any other torch (e.g. pulled by a torchvision that does not
# match) brings gigabytes of CUDA wheels. No torchvision: PyPI's is a CUDA build that cannot load
# against the CPU torch, and inference never uses it (see engine/encoders/laion.py).
TORCH="torch==2.13.0"
PINS=("$TORCH" "laion-clap==1.1.7" "numpy<2")
# earmark's own light dependencies (the main install's, minus torch and the sentence-encoder wheel)
LIGHT=("scipy>=1.10" "numba>=0.59" "faiss-cpu>=1.8" "sqlalchemy>=2.0" "alembic>=1.12" "click>=8.1" "soundfile>=0.12"
       "soxr>=0.3" "tqdm>=4.66" "rich>=13" "pytest>=8" "hypothesis>=6.100")
STAMP="$VENV/.earmark-laion-stamp"
WANT="$(printf '%s\n' "${PINS[@]}" "${LIGHT[@]}" | sha256sum | cut -c1-16)"

if [ ! -f "$STAMP" ] || [ "$(cat "$STAMP")" != "$WANT" ]; then
    python3 -m venv "$VENV"
    PY="$VENV/bin/python"
    CONSTRAINTS="$(mktemp)"
    printf '%s\n' "$TORCH" "numpy<2" > "$CONSTRAINTS"
    "$PY" -m pip install -q --upgrade pip
    "$PY" -m pip install -q "$TORCH"                    # first, alone: the local CPU wheel
    "$PY" -m pip install -q -c "$CONSTRAINTS" "${PINS[@]}" "${LIGHT[@]}"
    "$PY" -m pip install -q -c "$CONSTRAINTS" --no-deps -e .
    rm -f "$CONSTRAINTS"
    echo "$WANT" > "$STAMP"
fi
PY="$VENV/bin/python"
"$PY" -m pip list 2>/dev/null | grep -i -E "^(torch|numpy|laion.clap|transformers) " || true

# Fail loudly here rather than skip: in this environment laion_clap must import.
"$PY" -c "from earmark.engine.encoders.laion import clap_module; clap_module()"
set +e
# slow laion tests (the published HTSAT-tiny architecture, ~2 min here): EARMARK_LAION_SLOW=1
MARKS="laion and not slow"
[ "${EARMARK_LAION_SLOW:-0}" = "1" ] && MARKS="laion"
"$PY" -m pytest -q -m "$MARKS" tests/test_encoders_conformance.py tests/test_encoder_laion.py
rc=$?
set -e
if [ "$rc" -eq 5 ]; then
    echo "laion CI: no laion-marked test was collected; that is a failure" >&2
    exit 1
fi
exit "$rc"
