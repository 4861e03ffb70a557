"""A fresh install without the demo: every console page a person can open answers, never an
error — 200, or a redirect (to set the box up first, or to a page that needs a property)."""

from __future__ import annotations

import pytest

from app.domain.actors import ROLES, SYSTEM
from app.domain.users import create_user
from tests.console.conftest import login


def _plain_get_routes(app):
    for rule in app.url_map.iter_rules():
        if "GET" in rule.methods and not rule.arguments and not rule.rule.startswith("/api/"):
            if rule.endpoint in ("static", "auth.logout"):
                continue
            yield rule.rule


@pytest.mark.parametrize("role", ROLES)
def test_every_page_answers_on_an_empty_database(client, app, now, role):
    create_user(f"u_{role}", "password123", role, actor=SYSTEM, now=now)
    login(client, f"u_{role}")
    broken = {}
    for path in _plain_get_routes(app):
        status = client.get(path).status_code
        if status not in (200, 302, 303, 403):
            broken[path] = status
    assert broken == {}, " ".join(sorted(broken))
