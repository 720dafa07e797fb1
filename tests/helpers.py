"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import random
import socket
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, TypeVar

from flask import Flask
from flask.testing import FlaskClient
from sqlalchemy.orm import Session, sessionmaker

from hotline.accounts import Role, User, hash_password
from hotline.db import transaction

if TYPE_CHECKING:
    from playwright.sync_api import Page

T = TypeVar("T")


def wait_until(predicate: Callable[[], T], timeout: float = 10.0, every: float = 0.05) -> T | None:
    """Poll until `predicate()` is truthy and return its value, or None after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(every)


def csrf_of(client: FlaskClient, path: str = "/login") -> str:
    """The CSRF token of the form a page renders (as a browser would find it)."""
    page = client.get(path).get_data(as_text=True)
    marker = 'name="csrf_token" type="hidden" value="'
    start = page.index(marker) + len(marker)
    return page[start : page.index('"', start)]


def login(client: FlaskClient, username: str, password: str) -> str:
    """Log the client in through the login form; returns the session's CSRF token."""
    token = csrf_of(client)
    client.post("/login", data={"username": username, "password": password, "csrf_token": token})
    return token


def free_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1."""
    while True:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as tcp:
            tcp.bind(("127.0.0.1", 0))
            port = int(tcp.getsockname()[1])
            try:
                with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
                    udp.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port


def free_port_range(count: int) -> int:
    """The first of `count` consecutive ports free for UDP and TCP (SIP workers, RTP)."""
    for _ in range(200):
        base = random.randrange(30000, 60000 - count)
        try:
            for port in range(base, base + count):
                for kind in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
                    with socket.socket(socket.AF_INET, kind) as sock:
                        sock.bind(("127.0.0.1", port))
        except OSError:
            continue
        return base
    raise RuntimeError(f"no {count} consecutive free ports")


def log_in_page(page: Page, base: str, username: str, password: str) -> None:
    """Log a Playwright page in through the login form, as a person would."""
    from playwright.sync_api import expect

    page.goto(f"{base}/login")
    page.get_by_label("用户名").fill(username)
    page.get_by_label("密码").fill(password)
    page.get_by_role("button", name="登录").click()
    expect(page.get_by_role("button", name="退出", exact=True)).to_be_visible()


def logged_in(
    app: Flask,
    db: sessionmaker[Session],
    username: str,
    role: Role,
    password: str = "test-pass-phrase",
) -> tuple[FlaskClient, str]:
    """A new user with `role` (password already changed), and a client logged in as them + CSRF token."""
    with transaction(db) as session:
        session.add(
            User(
                username=username,
                display_name=username,
                role=role,
                password_hash=hash_password(password),
                must_change_password=False,
            )
        )
    client = app.test_client()
    return client, login(client, username, password)
