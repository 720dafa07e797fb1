"""Vendored front-end files are exactly the pinned npm releases, with their licences."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

VENDOR = Path(__file__).resolve().parents[2] / "agent-desk" / "agent_desk" / "static" / "vendor"


def test_every_vendored_file_matches_its_pinned_checksum_and_has_a_licence() -> None:
    manifest = json.loads((VENDOR / "vendor.json").read_text())
    assert {entry["package"] for entry in manifest} == {"socket.io-client", "chart.js", "htmx.org"}
    for entry in manifest:
        content = (VENDOR / entry["file"]).read_bytes()
        assert hashlib.sha256(content).hexdigest() == entry["sha256"], (
            f"{entry['file']} differs from the release"
        )
        licence = (VENDOR / entry["license_file"]).read_text()
        assert entry["license"] in {"MIT", "0BSD"} and ("MIT" in licence or "Zero-Clause BSD" in licence)
    listed = {entry["file"] for entry in manifest} | {"vendor.json", "licenses"}
    assert {p.name for p in VENDOR.iterdir()} == listed, "a file in vendor/ is not in the manifest"
