"""The demo data of 六盘水市: departments, staff, seats and their first-login passwords."""

from __future__ import annotations

from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from acd.models import Seat
from hotline.accounts import AuditEntry, Role, User
from hotline.db import Base, transaction
from hotline.seed import DEPARTMENTS, is_empty, seed_demo
from tickets.models import Department, DepartmentKind


def _counts(db: sessionmaker[Session]) -> dict[str, int]:
    with db() as session:
        return {
            table.name: session.scalar(select(func.count()).select_from(table)) or 0
            for table in Base.metadata.sorted_tables
        }


def test_seed_creates_the_city_its_staff_and_seats(db: sessionmaker[Session]) -> None:
    assert is_empty(db)

    credentials = seed_demo(db)

    assert not is_empty(db)
    with db() as session:
        districts = session.scalars(
            select(Department.name).where(Department.kind == DepartmentKind.DISTRICT)
        ).all()
        assert sorted(districts) == sorted(["钟山区", "六枝特区", "水城区", "盘州市"])
        departments = session.scalars(select(Department)).all()
        assert len(departments) == len(DEPARTMENTS) >= 15
        assert {"市住房和城乡建设局", "市人力资源和社会保障局", "六盘水供电局"} <= {
            d.name for d in departments
        }
        assert len({d.code for d in departments}) == len(departments)

        users = {u.username: u for u in session.scalars(select(User))}
        roles = sorted(u.role for u in users.values())
        assert roles.count(Role.ADMIN) == 1 and roles.count(Role.SUPERVISOR) == 1
        assert roles.count(Role.AGENT) == 4
        # One account per department, attached to it.
        staffed = [u.department_id for u in users.values() if u.role is Role.DEPARTMENT]
        assert sorted(staffed) == sorted(d.id for d in departments)
        assert all(u.must_change_password for u in users.values())

        seats = session.scalars(select(Seat).order_by(Seat.extension)).all()
        assert [s.extension for s in seats] == ["8001", "8002", "8003", "8004"]
        agents = {u.id: u for u in users.values() if u.role is Role.AGENT}
        assert sorted(s.agent_id for s in seats if s.agent_id is not None) == sorted(agents)
        assert all(s.skills.get("general") == 1 for s in seats)
        assert sum("enterprise" in s.skills for s in seats) == 1
        assert sum("dialect" in s.skills for s in seats) == 1
        assert len({s.sip_password for s in seats}) == 4 and all(len(s.sip_password) >= 16 for s in seats)

        audits = session.scalars(select(AuditEntry).where(AuditEntry.action == "seed_demo")).all()
        assert len(audits) == 1 and len(audits[0].detail["users"]) == len(users)

    # Every account gets its password exactly once, and only its Argon2 hash is stored.
    assert sorted(c.username for c in credentials) == sorted(users)
    by_name = {c.username: c for c in credentials}
    assert by_name["agent3"].extension == "8003"
    assert (
        by_name["dept-zhongshan"].department == "钟山区" and by_name["dept-zhongshan"].role is Role.DEPARTMENT
    )
    assert len({c.password for c in credentials}) == len(credentials)
    for username in ("admin", "supervisor", "agent1", "dept-power"):
        user = users[username]
        assert user.password_hash.startswith("$argon2id$")
        assert by_name[username].password not in user.password_hash
        assert user.check_password(by_name[username].password)
        assert not user.check_password(by_name["admin" if username != "admin" else "agent1"].password)


def test_seeding_twice_adds_nothing_and_keeps_existing_departments(db: sessionmaker[Session]) -> None:
    # An administrator already entered 钟山区 under the division code: it is used, not duplicated.
    with transaction(db) as session:
        session.add(Department(code="520201", name="钟山区", kind=DepartmentKind.DISTRICT))

    first = seed_demo(db)
    after_first = _counts(db)
    second = seed_demo(db)

    assert second == []
    assert _counts(db) == after_first
    assert after_first["departments"] == len(DEPARTMENTS)
    with db() as session:
        zhongshan = session.scalars(select(Department).where(Department.name == "钟山区")).one()
        assert zhongshan.code == "520201"
        assert (
            session.scalars(select(User.department_id).where(User.username == "dept-zhongshan")).one()
            == zhongshan.id
        )
    assert "dept-zhongshan" in {c.username for c in first}
