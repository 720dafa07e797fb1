"""The import rules of DESIGN.md, checked by walking every module's AST.

Who may import whom (domain packages import only the infra modules of `hotline`):
  hotline (composition root)  anything
  ivr                          acd, tickets, recordings, hotline infra
  tickets                      recordings, hotline infra
  agent_desk                   acd, tickets, recordings, hotline infra
  acd, recordings              hotline infra
Nothing but the web app factory imports agent_desk; the infra leaves import no project package
(`hotline.accounts` only `hotline.db`); drivers stay at the edge: pjsua2 only in `ivr.sip`,
vosk only in `ivr.speech` and `recordings.transcribe`.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE_DIRS = {
    "hotline": "hotline",
    "ivr": "ivr",
    "acd": "acd",
    "tickets": "tickets",
    "recordings": "recordings",
    "agent_desk": "agent-desk/agent_desk",
}
INFRA = {"hotline.settings", "hotline.db", "hotline.bus", "hotline.accounts"}
LEAVES = {
    "hotline.settings": set(),
    "hotline.db": set(),
    "hotline.bus": set(),
    "hotline.accounts": {"hotline.db"},
}
MAY_IMPORT = {
    "ivr": {"acd", "tickets", "recordings"},
    "tickets": {"recordings"},
    "agent_desk": {"acd", "tickets", "recordings"},
    "acd": set(),
    "recordings": set(),
}
AGENT_DESK_IMPORTERS = {"hotline.web"}
DRIVERS = {"pjsua2": ("ivr.sip",), "vosk": ("ivr.speech", "recordings.transcribe")}


def module_name(package: str, root: Path, path: Path) -> str:
    parts = [package, *path.relative_to(root).with_suffix("").parts]
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def imports_of(path: Path, module: str) -> list[tuple[int, str]]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    found: list[tuple[int, str]] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:  # relative: resolve against this module's package
                base = (
                    module.split(".")[: -node.level] if not path.name == "__init__.py" else module.split(".")
                )
                if path.name == "__init__.py" and node.level > 1:
                    base = module.split(".")[: -(node.level - 1)]
                target = ".".join([*base, node.module] if node.module else base)
            else:
                target = node.module or ""
            found.append((node.lineno, target))
            if target == "hotline":  # `from hotline import processes` imports hotline.processes
                found += [(node.lineno, f"hotline.{alias.name}") for alias in node.names]
    return found


def allowed(importer: str, target: str) -> bool:
    package = importer.split(".")[0]
    top = target.split(".")[0]
    for driver, owners in DRIVERS.items():
        if top == driver:
            return any(importer == o or importer.startswith(o + ".") for o in owners)
    if top not in PACKAGE_DIRS:
        return True  # standard library and third-party packages
    if importer in LEAVES:
        return target in LEAVES[importer] or target == importer
    if top == "agent_desk" and package != "agent_desk":
        return importer in AGENT_DESK_IMPORTERS
    if package == "hotline" or top == package:
        return True
    if top == "hotline":
        return target == "hotline" or any(target == m or target.startswith(m + ".") for m in INFRA)
    return top in MAY_IMPORT[package]


def violations(repo: Path) -> list[str]:
    found: list[str] = []
    for package, folder in PACKAGE_DIRS.items():
        root = repo / folder
        for path in sorted(root.rglob("*.py")) if root.exists() else []:
            if "migrations" in path.parts:
                continue
            module = module_name(package, root, path)
            for lineno, target in imports_of(path, module):
                if target and target != "hotline" and not allowed(module, target):
                    found.append(f"{path.relative_to(repo)}:{lineno}: {module} may not import {target}")
    return sorted(set(found))


def test_the_tree_follows_the_import_rules() -> None:
    assert violations(REPO) == []


def _plant(tmp_path: Path, rel: str, source: str) -> Path:
    path = tmp_path / rel
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "__init__.py").touch()
    path.write_text(source)
    return tmp_path


@pytest.mark.parametrize(
    ("rel", "source", "expected"),
    [
        ("acd/router.py", "from tickets.models import Ticket\n", "acd.router may not import tickets.models"),
        ("recordings/store.py", "import acd\n", "recordings.store may not import acd"),
        ("tickets/jobs.py", "from ivr import sip\n", "tickets.jobs may not import ivr"),
        ("tickets/views.py", "import agent_desk.views\n", "tickets.views may not import agent_desk.views"),
        (
            "agent-desk/agent_desk/calls.py",
            "import ivr.worker\n",
            "agent_desk.calls may not import ivr.worker",
        ),
        ("agent-desk/agent_desk/calls.py", "import pjsua2\n", "agent_desk.calls may not import pjsua2"),
        ("ivr/menu.py", "import pjsua2 as pj\n", "ivr.menu may not import pjsua2"),
        ("ivr/menu.py", "from hotline.cli import main\n", "ivr.menu may not import hotline.cli"),
        ("ivr/menu.py", "from hotline import processes\n", "ivr.menu may not import hotline.processes"),
        (
            "hotline/db.py",
            "from hotline.settings import Settings\n",
            "hotline.db may not import hotline.settings",
        ),
        ("acd/asr.py", "import vosk\n", "acd.asr may not import vosk"),
    ],
)
def test_a_planted_bad_import_is_caught(tmp_path: Path, rel: str, source: str, expected: str) -> None:
    found = violations(_plant(tmp_path, rel, source))
    assert any(expected in line for line in found), found


@pytest.mark.parametrize(
    ("rel", "source"),
    [
        ("ivr/sip.py", "import pjsua2\n"),
        ("ivr/menu.py", "from acd.models import Call\nfrom hotline.bus import EventBus\n"),
        ("tickets/links.py", "from recordings.models import Recording\nfrom hotline import db\n"),
        ("recordings/transcribe.py", "import vosk\n"),
    ],
)
def test_allowed_imports_pass(tmp_path: Path, rel: str, source: str) -> None:
    assert violations(_plant(tmp_path, rel, source)) == []
