import pytest

from app.domain.actors import ROLES, SYSTEM
from app.domain.users import create_user

PASSWORD = "password123"


def csrf(client):
    with client.session_transaction() as s:
        return s.get("csrf")


def login(client, username, password=PASSWORD):
    client.get("/login")
    r = client.post(
        "/login", data={"username": username, "password": password, "csrf_token": csrf(client)}
    )
    client.get("/login")  # a fresh session gets its CSRF token on the next page
    return r


def post(client, url, data=None, **kwargs):
    return client.post(url, data={**(data or {}), "csrf_token": csrf(client)}, **kwargs)


@pytest.fixture
def staff(app, now):
    """One user per role, named after the role."""
    return {role: create_user(role, PASSWORD, role, actor=SYSTEM, now=now) for role in ROLES}
