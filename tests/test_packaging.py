"""The wheel carries every package folder on disk, its templates and its migrations."""

from __future__ import annotations

import subprocess
import sys
import zipfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
PACKAGE_ROOTS = [
    REPO / "hotline",
    REPO / "ivr",
    REPO / "acd",
    REPO / "tickets",
    REPO / "recordings",
    REPO / "agent-desk" / "agent_desk",
]


def _package_dirs() -> set[str]:
    found = set()
    for root in PACKAGE_ROOTS:
        for init in root.rglob("__init__.py"):
            found.add(init.parent.relative_to(root.parent).as_posix())
    return found


def test_every_package_and_data_file_is_in_the_wheel(tmp_path: Path) -> None:
    subprocess.run(
        [sys.executable, "-m", "build", "--wheel", "--no-isolation", "--outdir", str(tmp_path), str(REPO)],
        check=True,
        capture_output=True,
        cwd=tmp_path,
    )
    (wheel,) = tmp_path.glob("*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    packages = {name.rsplit("/", 1)[0] for name in names if name.endswith("/__init__.py")}
    assert _package_dirs() <= packages, sorted(_package_dirs() - packages)
    # Data the running hotline reads from its own package.
    assert "hotline/migrations/env.py" in names
    assert any(n.startswith("hotline/migrations/versions/0001_") for n in names)
    assert "hotline/templates/layout.html" in names
    assert "agent_desk/templates/desk/index.html" in names
    assert any(n.startswith("ivr/templates/") and n.endswith(".j2") for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "hotline = hotline.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()
