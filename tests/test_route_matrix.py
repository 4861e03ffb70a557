"""Every route × every role against the permission matrix.

Each URL rule must either carry a permission (``login_required("...")`` on console views,
``auth("...")`` on the API) or be listed below as deliberately open.  A new route without a rule
fails ``test_every_route_has_a_permission_rule``; ``test_each_role_gets_exactly_what_the_matrix_allows``
then calls every route as every role: a role without the permission gets 403, a role with it
gets past the check (whatever the view then says about the made-up ids) and never a 500.
"""

from __future__ import annotations

import pytest

from app.domain.actors import PERMISSIONS, ROLES, SYSTEM
from app.domain.users import create_api_token, create_user
from tests.test_console import csrf, login

# Endpoints anyone may reach, signed in or not, and why.
PUBLIC = {
    "static": "stylesheets and scripts",
    "auth.login": "the sign-in page",
    "auth.logout": "signing out",
    "auth.language": "the language switch on the sign-in page",
    "healthz": "monitoring; reports no data",
    "sms.webhook.twilio_status": "Twilio delivery callbacks, checked by signature",
    "api.openapi": "the API description",
}
# Endpoints every signed-in user may reach.
SIGNED_IN = {"console.index": "sends each user to their start page"}

METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")


def _rules(app):
    for rule in app.url_map.iter_rules():
        view = app.view_functions[rule.endpoint]
        yield rule, view


def _url(rule) -> str:
    values = {}
    for arg in rule.arguments:
        conv = rule._converters[arg]
        values[arg] = (
            987654321 if type(conv).__name__ in ("IntegerConverter", "NumberConverter") else "x"
        )
    path = rule.rule
    for name, value in values.items():
        path = path.replace(f"<int:{name}>", str(value)).replace(f"<{name}>", str(value))
        path = path.replace(f"<string:{name}>", str(value)).replace(f"<path:{name}>", str(value))
    return path


def test_every_route_has_a_permission_rule(app):
    missing = []
    for rule, view in _rules(app):
        if rule.endpoint in PUBLIC or rule.endpoint in SIGNED_IN:
            continue
        permission = getattr(view, "permission", None)
        if permission is None:
            missing.append(f"{rule.rule} ({rule.endpoint})")
        else:
            assert permission in PERMISSIONS, (
                f"{rule.endpoint} names an unknown permission {permission!r}"
            )
    assert not missing, "routes without a permission rule: " + ", ".join(sorted(missing))


def test_open_routes_listed_here_exist(app):
    endpoints = {rule.endpoint for rule, _ in _rules(app)}
    stale = (set(PUBLIC) | set(SIGNED_IN)) - endpoints
    assert not stale, f"listed as open but no longer routes: {sorted(stale)}"


@pytest.fixture
def role_clients(app, now):
    clients = {}
    tokens = {}
    for role in ROLES:
        create_user(f"m_{role}", "password123", role, actor=SYSTEM, now=now)
        c = app.test_client()
        assert login(c, f"m_{role}").status_code in (302, 303, 200)
        clients[role] = c
        _, tokens[role] = create_api_token(f"t_{role}", role, actor=SYSTEM, now=now)
    return clients, tokens


def test_each_role_gets_exactly_what_the_matrix_allows(app, site, role_clients):
    clients, tokens = role_clients
    checked = 0
    problems = []
    for rule, view in _rules(app):
        permission = getattr(view, "permission", None)
        if permission is None:
            continue
        url = _url(rule)
        api = rule.endpoint.startswith("api.")
        for method in sorted(set(rule.methods) & set(METHODS)):
            for role in ROLES:
                client = clients[role]
                kwargs = {}
                if api:
                    kwargs["headers"] = {"Authorization": f"Bearer {tokens[role]}"}
                    if method != "GET":
                        kwargs["json"] = {}
                elif method != "GET":
                    kwargs["data"] = {"csrf_token": csrf(client)}
                r = client.open(url, method=method, **kwargs)
                allowed = role in PERMISSIONS[permission]
                checked += 1
                if allowed and (r.status_code == 403 or r.status_code >= 500):
                    problems.append(
                        f"{method} {rule.rule} as {role}: {r.status_code}, expected allowed"
                    )
                if not allowed and r.status_code != 403:
                    problems.append(
                        f"{method} {rule.rule} as {role}: {r.status_code}, expected 403"
                    )
    assert checked > 0
    assert not problems, "\n".join(problems)


def test_signed_out_requests_to_protected_routes_go_to_the_login(app, client):
    for rule, view in _rules(app):
        if (
            getattr(view, "permission", None) is None
            or rule.endpoint.startswith("api.")
            or "GET" not in rule.methods
        ):
            continue
        r = client.get(_url(rule))
        assert r.status_code == 302 and "/login" in r.headers["Location"], rule.rule
