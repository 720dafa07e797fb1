"""`hotline keys`: a key is printed once, works, is listed by prefix only, and can be revoked."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from subprocess import CompletedProcess

from sqlalchemy.orm import Session, sessionmaker

from hotline.db import transaction
from tickets import api_tokens
from tickets.models import Department, DepartmentKind

Run = Callable[..., CompletedProcess[str]]


def test_department_keys_are_issued_once_listed_and_revoked(
    run_hotline: Run, db: sessionmaker[Session], database_url: str, tmp_path: Path
) -> None:
    with transaction(db) as session:
        session.add(Department(code="water", name="市水务局", kind=DepartmentKind.BUREAU))
    env = {"DATABASE_URL": database_url, "HOTLINE_VAR_DIR": str(tmp_path / "var")}
    issued = run_hotline(
        "keys", "issue", "department", "--department", "water", "--name", "水务系统", env=env
    )
    assert issued.returncode == 0, issued.stderr
    key = issued.stdout.strip().splitlines()[-1]
    with db() as session:
        assert api_tokens.authenticate(session, key) is not None
    listed = run_hotline("keys", "list", "department", env=env).stdout
    assert "water" in listed and key not in listed
    prefix = listed.split()[0]
    assert run_hotline("keys", "revoke", "department", prefix, env=env).returncode == 0
    with db() as session:
        assert api_tokens.authenticate(session, key) is None
    unknown = run_hotline("keys", "issue", "department", "--department", "nope", "--name", "x", env=env)
    assert unknown.returncode == 1 and "nope" in unknown.stderr


def test_open311_keys(run_hotline: Run, database_url: str, tmp_path: Path, db: sessionmaker[Session]) -> None:
    env = {"DATABASE_URL": database_url, "HOTLINE_VAR_DIR": str(tmp_path / "var")}
    issued = run_hotline(
        "keys", "issue", "open311", "--name", "随手拍App", "--contact", "app@example.org", env=env
    )
    assert issued.returncode == 0, issued.stderr
    assert "随手拍App" in run_hotline("keys", "list", "open311", env=env).stdout
