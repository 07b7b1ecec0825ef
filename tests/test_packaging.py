"""The wheel maps the product owner's layout into one `earmark` namespace."""
from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_wheel_has_only_the_earmark_namespace(tmp_path):
    out = subprocess.run(
        [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q", "-w", str(tmp_path), str(REPO)],
        capture_output=True, text=True,
    )
    assert out.returncode == 0, out.stderr[-2000:]
    (wheel,) = tmp_path.glob("earmark-*.whl")
    names = zipfile.ZipFile(wheel).namelist()
    tops = {n.split("/", 1)[0] for n in names}
    assert tops == {"earmark", next(t for t in tops if t.endswith(".dist-info"))}
    for needed in ("earmark/__init__.py", "earmark/cli.py", "earmark/engine/library.py", "earmark/index/store.py",
                   "earmark/migrations/env.py", "earmark/migrations/versions/0001_library_store.py",
                   "earmark/migrations/script.py.mako"):
        assert needed in names
    assert not any(n.startswith("earmark/tests/") for n in names)
    entry = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith("entry_points.txt"))).decode()
    assert "earmark = earmark.cli:main" in entry
