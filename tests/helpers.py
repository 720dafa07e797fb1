"""Small helpers shared by the tests (fixtures live in conftest.py)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

from flask.testing import FlaskClient

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
