"""Staff users and API tokens."""

from __future__ import annotations

import datetime as dt
import hashlib
import secrets

from werkzeug.security import check_password_hash, generate_password_hash

from app.db import write_tx
from app.domain.actors import ROLES, Actor
from app.domain.audit import audit
from app.domain.errors import ValidationError
from app.i18n import tr
from app.models import ApiToken, User

MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)


def create_user(username: str, password: str, role: str, *, actor: Actor, now: dt.datetime,
                full_name: str = "") -> User:
    actor.require("user.manage")
    username = (username or "").strip()
    if not username or len(username) > 60:
        raise ValidationError(tr("a username is 1-60 characters"), "username")
    if role not in ROLES:
        raise ValidationError(tr("unknown role '%(role)s' (%(roles)s)", role=role, roles=", ".join(ROLES)),
                              "role")
    if len(password or "") < 8:
        raise ValidationError(tr("a password has at least 8 characters"), "password")
    with write_tx():
        if User.select().where(User.username == username).exists():
            raise ValidationError(tr("user '%(username)s' exists", username=username), "username")
        user = User.create(username=username, password_hash=generate_password_hash(password),
                           role=role, full_name=full_name, created_at=now)
        audit(actor, "user.create", user, now=now, username=username, role=role)
    return user


def authenticate(username: str, password: str, *, now: dt.datetime) -> User | None:
    """The user if the password is right and the account is not locked; counts failures and
    locks the account for a while after repeated ones."""
    user = User.get_or_none(User.username == (username or "").strip())
    if user is None or not user.active:
        check_password_hash(generate_password_hash("x"), password or "")  # same cost either way
        return None
    if user.locked_until and user.locked_until > now:
        return None
    with write_tx():
        if check_password_hash(user.password_hash, password or ""):
            User.update(failed_logins=0, locked_until=None).where(User.id == user.id).execute()
            return user
        failures = user.failed_logins + 1
        locked = now + LOCKOUT if failures >= MAX_FAILURES else None
        User.update(failed_logins=0 if locked else failures, locked_until=locked).where(
            User.id == user.id).execute()
    return None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(name: str, role: str, *, actor: Actor, now: dt.datetime) -> tuple[ApiToken, str]:
    """Returns the token row and the secret, which is shown once and stored only hashed."""
    actor.require("user.manage")
    if role not in ROLES:
        raise ValidationError(tr("unknown role '%(role)s'", role=role), "role")
    secret = "md_" + secrets.token_urlsafe(32)
    with write_tx():
        token = ApiToken.create(name=name, token_hash=hash_token(secret), role=role, created_at=now)
        audit(actor, "token.create", token, now=now, name=name, role=role)
    return token, secret


def token_actor(secret: str) -> Actor | None:
    token = ApiToken.get_or_none((ApiToken.token_hash == hash_token(secret)) & (ApiToken.revoked == False))  # noqa: E712
    if token is None:
        return None
    return Actor(f"api:{token.name}", token.role)
