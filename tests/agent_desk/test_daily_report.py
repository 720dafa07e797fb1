"""The daily report job: enqueued by dotted name, writes yesterday's figures as HTML, safe twice."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

import pytest
from flask import Flask
from flask.testing import FlaskClient
from rq import Queue, SimpleWorker
from sqlalchemy.orm import Session, sessionmaker

from hotline import bus
from hotline.db import utcnow
from tests.agent_desk.test_reports import DAY, _seed_calls, _seed_tickets


@pytest.fixture
def var_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, database_url: str, redis_url: str) -> Path:
    """The job reads its settings as the worker would: from the environment."""
    monkeypatch.setenv("HOTLINE_VAR_DIR", str(tmp_path / "var"))
    monkeypatch.setenv("HOTLINE_CONFIG", str(tmp_path / "hotline.toml"))
    (tmp_path / "hotline.toml").write_text("")
    monkeypatch.setenv("DATABASE_URL", database_url)
    monkeypatch.setenv("REDIS_URL", redis_url)
    return tmp_path / "var"


def test_the_worker_writes_a_days_report_by_dotted_name_and_again_the_same(
    var_dir: Path, db: sessionmaker[Session], people: object, redis_url: str, redis_client: object
) -> None:
    _seed_calls(db)
    _seed_tickets(db, people.agent_id, people.department_id)  # type: ignore[attr-defined]
    connection = bus.connect(redis_url, decode_responses=False)
    queue = Queue("default", connection=connection)
    for _ in range(2):  # a second run rewrites the same report
        job = queue.enqueue("agent_desk.daily_report.daily_report", DAY)
        SimpleWorker([queue], connection=connection).work(burst=True)
        assert job.get_status(refresh=True) == "finished", job.latest_result()
    connection.close()
    report = (var_dir / "reports" / f"{DAY}.html").read_text(encoding="utf-8")
    assert "12345 政务服务便民热线日报（2026年11月20日）" in report
    assert "<th>合计</th><th>4</th><th>3</th><th>2</th><th>50.0%</th>" in report  # calls of the day
    assert "<td>电话</td><td>2</td>" in report and "<td>路灯</td><td>2</td>" in report
    assert "<script" not in report
    assert [p.name for p in (var_dir / "reports").iterdir()] == [f"{DAY}.html"]  # no temporary left


def test_supervisors_list_and_download_the_daily_reports(
    app: Flask, var_dir: Path, db: sessionmaker[Session], login_as: Callable[[FlaskClient, str], str]
) -> None:
    from agent_desk.daily_report import daily_report

    daily_report(DAY)
    lead, agent = app.test_client(), app.test_client()
    login_as(lead, "lead")
    login_as(agent, "agent1")
    assert f'href="/reports/daily/{DAY}.html"' in lead.get("/reports/daily").get_data(as_text=True)
    download = lead.get(f"/reports/daily/{DAY}.html")
    assert "attachment" in download.headers["Content-Disposition"]
    assert "日报（2026年11月20日）" in download.get_data(as_text=True)
    assert lead.get("/reports/daily/2026-11-19.html").status_code == 404
    assert lead.get("/reports/daily/..%2Fsecret_key.html").status_code == 404
    assert agent.get("/reports/daily").status_code == 403


def test_without_a_day_it_writes_yesterday_once(
    var_dir: Path, db: sessionmaker[Session], people: object
) -> None:
    from agent_desk.daily_report import daily_report

    yesterday = utcnow().astimezone(dt.timezone(dt.timedelta(hours=8))).date() - dt.timedelta(days=1)
    path = Path(daily_report())
    assert path == var_dir / "reports" / f"{yesterday.isoformat()}.html"
    assert "当日暂无数据" in path.read_text(encoding="utf-8")
    path.write_text("kept")  # a later run finds it written and leaves it
    assert daily_report() == str(path) and path.read_text() == "kept"
