"""Demo data for a fresh 六盘水市 12345 hotline: departments, staff accounts and agent seats."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

from sqlalchemy import exists, select
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, audit
from hotline.db import transaction

# Through hotline.models, so every table is registered on Base and is_empty sees them all.
from hotline.models import Base, Department, Seat, User
from tickets.catalog import seed_catalog
from tickets.models import DepartmentKind


@dataclass(frozen=True)
class Credential:
    """A first-login password, returned once to be shown to the administrator; never stored."""

    username: str
    role: Role
    display_name: str
    department: str  # the department's name, empty for centre staff
    password: str
    extension: str = ""  # the agent's seat extension, empty for everyone else

    def __str__(self) -> str:
        where = "  ".join(
            part for part in (self.department, f"分机 {self.extension}" if self.extension else "") if part
        )
        return (
            f"{self.username:<24} {self.password}  {self.display_name} ({self.role.value}) {where}".rstrip()
        )


@dataclass(frozen=True)
class DepartmentSpec:
    code: str
    name: str
    kind: DepartmentKind
    hotline_number: str = ""


# The districts (区/特区/县级市) and the city bureaus and utilities that take most dispatches.
# Numbers are given only for the national lines that still run beside 12345 (分线受理); lines
# merged into 12345 (12369, 12336, 12320, ...) are left blank, since a transfer there would only
# come back to us. 122 is an emergency line: the IVR's emergency transfer handles it, not dispatch.
# The utilities' names are placeholders for the companies actually serving the city.
DEPARTMENTS: tuple[DepartmentSpec, ...] = (
    DepartmentSpec("zhongshan", "钟山区", DepartmentKind.DISTRICT),
    DepartmentSpec("liuzhi", "六枝特区", DepartmentKind.DISTRICT),
    DepartmentSpec("shuicheng", "水城区", DepartmentKind.DISTRICT),
    DepartmentSpec("panzhou", "盘州市", DepartmentKind.DISTRICT),
    DepartmentSpec("housing", "市住房和城乡建设局", DepartmentKind.BUREAU),
    DepartmentSpec("natural-resources", "市自然资源局", DepartmentKind.BUREAU),
    DepartmentSpec("ecology", "市生态环境局", DepartmentKind.BUREAU),
    DepartmentSpec("transport", "市交通运输局", DepartmentKind.BUREAU, "12328"),
    DepartmentSpec("market-regulation", "市市场监督管理局", DepartmentKind.BUREAU, "12315"),
    DepartmentSpec("human-resources", "市人力资源和社会保障局", DepartmentKind.BUREAU, "12333"),
    DepartmentSpec("education", "市教育局", DepartmentKind.BUREAU),
    DepartmentSpec("health", "市卫生健康局", DepartmentKind.BUREAU),
    DepartmentSpec("urban-management", "市综合行政执法局", DepartmentKind.BUREAU),
    DepartmentSpec("water-affairs", "市水务局", DepartmentKind.BUREAU),
    DepartmentSpec("civil-affairs", "市民政局", DepartmentKind.BUREAU),
    DepartmentSpec("medical-security", "市医疗保障局", DepartmentKind.BUREAU, "12393"),
    DepartmentSpec("traffic-police", "市公安局交通警察支队", DepartmentKind.BUREAU),
    DepartmentSpec("power", "六盘水供电局", DepartmentKind.ENTERPRISE, "95598"),
    DepartmentSpec("water-supply", "市自来水公司", DepartmentKind.ENTERPRISE),
    DepartmentSpec("gas", "市燃气公司", DepartmentKind.ENTERPRISE),
)


@dataclass(frozen=True)
class StaffSpec:
    username: str
    display_name: str
    role: Role
    extension: str = ""
    skills: tuple[tuple[str, int], ...] = ()


# Every agent takes general calls; the business (涉企) and dialect (方言) desks are skills.
STAFF: tuple[StaffSpec, ...] = (
    StaffSpec("admin", "系统管理员", Role.ADMIN),
    StaffSpec("supervisor", "班长", Role.SUPERVISOR),
    StaffSpec("agent1", "话务员01", Role.AGENT, "8001", (("general", 1),)),
    StaffSpec("agent2", "话务员02", Role.AGENT, "8002", (("general", 1),)),
    StaffSpec("agent3", "话务员03", Role.AGENT, "8003", (("general", 1), ("enterprise", 1))),
    StaffSpec("agent4", "话务员04", Role.AGENT, "8004", (("general", 1), ("dialect", 1))),
)

# No 0/O, 1/l/I: first-login passwords are read off a screen and typed by hand.
_ALPHABET = "abcdefghjkmnpqrstuvwxyzABCDEFGHJKMNPQRSTUVWXYZ23456789"


def readable_password(groups: int = 3, size: int = 4) -> str:
    """A random password like `Kq7d-mT3x-9fRw` (about 70 bits with the defaults)."""
    return "-".join("".join(secrets.choice(_ALPHABET) for _ in range(size)) for _ in range(groups))


def department_username(spec: DepartmentSpec) -> str:
    return f"dept-{spec.code}"


def is_empty(factory: sessionmaker[Session]) -> bool:
    """True when no hotline table holds a row (a fresh install, before seeding or restoring)."""
    with factory() as session:
        return not any(
            session.scalar(select(exists().select_from(table))) for table in Base.metadata.sorted_tables
        )


def seed_demo(factory: sessionmaker[Session]) -> list[Credential]:
    """Create what is missing of the demo set, in one transaction; return the new accounts' passwords.

    Records are matched by their stable keys (department code or name, username, extension), so a
    second run creates nothing and returns []. Only new accounts get a password.
    """
    credentials: list[Credential] = []
    with transaction(factory) as session:
        departments, created_departments = _seed_departments(session)
        catalog = seed_catalog(session)
        for staff in STAFF:
            credential = _ensure_user(
                session, staff.username, staff.display_name, staff.role, None, staff.extension
            )
            if credential is not None:
                credentials.append(credential)
        seats = _seed_seats(session)
        for spec, department in zip(DEPARTMENTS, departments, strict=True):
            credential = _ensure_user(
                session, department_username(spec), f"{department.name}承办人", Role.DEPARTMENT, department
            )
            if credential is not None:
                credentials.append(credential)
        if created_departments or seats or credentials or any(catalog.values()):
            audit(
                session,
                "seed_demo",
                target_type="system",
                detail={
                    "departments": created_departments,
                    "users": [c.username for c in credentials],
                    "seats": seats,
                    "catalog": catalog,
                },
                source="seed",
            )
    return credentials


def _seed_departments(session: Session) -> tuple[list[Department], list[str]]:
    # Found by code, else by name (an administrator may have re-coded or renamed one), else created.
    departments: list[Department] = []
    created: list[str] = []
    for spec in DEPARTMENTS:
        department = session.scalars(select(Department).where(Department.code == spec.code)).first()
        if department is None:
            department = session.scalars(select(Department).where(Department.name == spec.name)).first()
        if department is None:
            department = Department(
                code=spec.code, name=spec.name, kind=spec.kind, hotline_number=spec.hotline_number
            )
            session.add(department)
            created.append(spec.code)
        departments.append(department)
    session.flush()
    return departments, created


def _ensure_user(
    session: Session,
    username: str,
    display_name: str,
    role: Role,
    department: Department | None,
    extension: str = "",
) -> Credential | None:
    if session.scalar(select(exists().where(User.username == username))):
        return None
    password = readable_password()
    user = User(
        username=username,
        display_name=display_name,
        role=role,
        department_id=department.id if department is not None else None,
        must_change_password=True,
    )
    user.set_password(password)
    session.add(user)
    session.flush()
    department_name = department.name if department is not None else ""
    return Credential(username, role, display_name, department_name, password, extension)


def _seed_seats(session: Session) -> list[str]:
    created: list[str] = []
    for staff in STAFF:
        if not staff.extension or session.scalar(select(exists().where(Seat.extension == staff.extension))):
            continue
        agent = session.scalars(select(User).where(User.username == staff.username)).first()
        session.add(
            Seat(
                extension=staff.extension,
                name=f"{staff.extension}座席",
                # The phone's digest secret: typed once into the phone, never by the agent.
                sip_password=secrets.token_urlsafe(18),
                skills=dict(staff.skills),
                agent_id=agent.id if agent is not None else None,
            )
        )
        created.append(staff.extension)
    session.flush()
    return created
