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
from app.models import ApiToken, Property, User, UserProperty

MAX_FAILURES = 5
LOCKOUT = dt.timedelta(minutes=15)


def _clean_full_name(full_name: str) -> str:
    full_name = (full_name or "").strip()
    if len(full_name) > 120:
        raise ValidationError(tr("a full name is at most 120 characters"), "full_name")
    return full_name


def _check_role(role: str) -> None:
    if role not in ROLES:
        raise ValidationError(
            tr("unknown role '%(role)s' (%(roles)s)", role=role, roles=", ".join(ROLES)), "role"
        )


def _check_password(password: str) -> None:
    if len(password or "") < 8:
        raise ValidationError(tr("a password has at least 8 characters"), "password")


def _property_ids(property_ids) -> list[int]:
    ids = sorted({int(p) for p in property_ids or ()})
    if ids and Property.select().where(Property.id.in_(ids)).count() != len(ids):
        raise ValidationError(tr("unknown property"), "properties")
    return ids


def _set_properties(user: User, ids: list[int]) -> None:
    UserProperty.delete().where(UserProperty.user == user).execute()
    if ids:
        UserProperty.insert_many([{"user": user.id, "property": pid} for pid in ids]).execute()


def create_user(
    username: str,
    password: str,
    role: str,
    *,
    actor: Actor,
    now: dt.datetime,
    full_name: str = "",
    property_ids=(),
) -> User:
    """A staff user.  ``property_ids`` limits what they see (empty: every property)."""
    actor.require("user.manage")
    username = (username or "").strip()
    if not username or len(username) > 60:
        raise ValidationError(tr("a username is 1-60 characters"), "username")
    _check_role(role)
    full_name = _clean_full_name(full_name)
    _check_password(password)
    with write_tx():
        ids = _property_ids(property_ids)
        if User.select().where(User.username == username).exists():
            raise ValidationError(tr("user '%(username)s' exists", username=username), "username")
        user = User.create(
            username=username,
            password_hash=generate_password_hash(password),
            role=role,
            full_name=full_name,
            created_at=now,
        )
        _set_properties(user, ids)
        audit(actor, "user.create", user, now=now, username=username, role=role, properties=ids)
    return user


def user_property_ids(user: User) -> list[int]:
    return [
        link.property_id
        for link in UserProperty.select()
        .where(UserProperty.user == user)
        .order_by(UserProperty.property)
    ]


def _active_admins_other_than(user: User) -> int:
    return (
        User.select()
        .where((User.role == "admin") & (User.active == True) & (User.id != user.id))
        .count()
    )


def update_user(
    user: User, *, actor: Actor, now: dt.datetime, role: str, full_name: str = "", property_ids=()
) -> User:
    """Change a user's role, name and the properties they see.  The last active admin keeps
    the admin role so that somebody can still manage users."""
    actor.require("user.manage")
    _check_role(role)
    full_name = _clean_full_name(full_name)
    with write_tx():
        ids = _property_ids(property_ids)
        user = User.get_by_id(user.id)
        if (
            user.role == "admin"
            and role != "admin"
            and user.active
            and not _active_admins_other_than(user)
        ):
            raise ValidationError(tr("the last active administrator keeps the admin role"), "role")
        before = {
            "role": user.role,
            "full_name": user.full_name,
            "properties": user_property_ids(user),
        }
        User.update(role=role, full_name=full_name).where(User.id == user.id).execute()
        _set_properties(user, ids)
        after = {"role": role, "full_name": full_name, "properties": ids}
        changed = {k: [before[k], after[k]] for k in after if before[k] != after[k]}
        audit(actor, "user.update", user, now=now, username=user.username, changed=changed)
    return User.get_by_id(user.id)


def set_password(user: User, password: str, *, actor: Actor, now: dt.datetime) -> None:
    """Reset a user's password; their open sessions end (the session carries a hash tail)."""
    actor.require("user.manage")
    _check_password(password)
    with write_tx():
        User.update(
            password_hash=generate_password_hash(password), failed_logins=0, locked_until=None
        ).where(User.id == user.id).execute()
        audit(actor, "user.password", user, now=now, username=user.username)


def set_active(user: User, active: bool, *, actor: Actor, now: dt.datetime) -> None:
    """Deactivate (cannot sign in, open sessions end) or reactivate a user."""
    actor.require("user.manage")
    with write_tx():
        user = User.get_by_id(user.id)
        if not active and user.username == actor.name:
            raise ValidationError(tr("you cannot deactivate yourself"), "active")
        if not active and user.role == "admin" and not _active_admins_other_than(user):
            raise ValidationError(
                tr("the last active administrator cannot be deactivated"), "active"
            )
        User.update(active=bool(active)).where(User.id == user.id).execute()
        audit(
            actor,
            "user.activate" if active else "user.deactivate",
            user,
            now=now,
            username=user.username,
        )


def unlock(user: User, *, actor: Actor, now: dt.datetime) -> None:
    """Lift a lockout after repeated wrong passwords."""
    actor.require("user.manage")
    with write_tx():
        User.update(failed_logins=0, locked_until=None).where(User.id == user.id).execute()
        audit(actor, "user.unlock", user, now=now, username=user.username)


def is_locked(user: User, now: dt.datetime) -> bool:
    return bool(user.locked_until and user.locked_until > now)


def visible_property_ids(user: User | None) -> set[int] | None:
    """The ids of the properties ``user`` may see, or ``None`` for all of them.

    Admins always see every property; so does a user with no ``UserProperty`` rows.  Use it
    to narrow a console query, and answer 404 for a single object outside the set::

        scope = visible_property_ids(g.user)
        if scope is not None:
            query = query.where(Meter.property.in_(scope))

    ``app.web.property_scope()`` returns this for the signed-in user and
    ``app.web.check_property(property_id)`` aborts with 404 when it is out of scope.
    """
    if user is None or user.role == "admin":
        return None
    ids = {
        link.property_id
        for link in UserProperty.select(UserProperty.property).where(UserProperty.user == user)
    }
    return ids or None


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
            User.update(failed_logins=0, locked_until=None, last_login_at=now).where(
                User.id == user.id
            ).execute()
            return User.get_by_id(user.id)
        failures = user.failed_logins + 1
        locked = now + LOCKOUT if failures >= MAX_FAILURES else None
        User.update(failed_logins=0 if locked else failures, locked_until=locked).where(
            User.id == user.id
        ).execute()
        if locked:
            audit(
                Actor(user.username, user.role),
                "user.lockout",
                user,
                now=now,
                username=user.username,
                until=locked,
            )
    return None


def hash_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def create_api_token(
    name: str, role: str, *, actor: Actor, now: dt.datetime
) -> tuple[ApiToken, str]:
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
    token = ApiToken.get_or_none(
        (ApiToken.token_hash == hash_token(secret)) & (ApiToken.revoked == False)
    )
    if token is None:
        return None
    return Actor(f"api:{token.name}", token.role)
