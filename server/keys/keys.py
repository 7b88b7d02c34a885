"""API keys: made here, shown once, stored as their sha256, looked up by it.

A key is 256 random bits, so its sha256 needs no salt or slow hash, and looking it up by
its hash compares nothing secret in Python: there is no timing to measure.
"""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy import Connection, Row, exists, func, select, update

from server.keys.tables import api_keys
from server.targets import is_allowed, split_name

KEY_PREFIX = "csvi_"
SHOWN_PREFIX = len(KEY_PREFIX) + 6
_TENANT = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,99}")


class BadKeySpec(ValueError):
    """A tenant or a target list that a key cannot be made with."""


@dataclass(frozen=True)
class Tenant:
    """Who is calling. `targets` limits the tables it may import into (within the
    operator's allow-list); None leaves the operator's list as it is."""

    name: str
    targets: tuple[str, ...] | None = None
    operator: bool = False

    def allows(self, target: str) -> bool:
        return self.targets is None or is_allowed(target, list(self.targets))


def digest(key: str) -> str:
    return hashlib.sha256(key.encode("utf-8", "surrogatepass")).hexdigest()


def create_key(
    connection: Connection,
    tenant: str,
    name: str,
    targets: Sequence[str] | None = None,
    operator: bool = False,
) -> tuple[int, str]:
    """A new key for `tenant`: its id, and the key itself, which is never stored."""
    check_spec(tenant, targets)
    key = KEY_PREFIX + secrets.token_urlsafe(32)
    key_id: int = connection.execute(
        api_keys.insert()
        .values(
            tenant=tenant,
            name=name,
            key_hash=digest(key),
            prefix=key[:SHOWN_PREFIX],
            targets=None if targets is None else list(targets),
            operator=operator,
        )
        .returning(api_keys.c.id)
    ).scalar_one()
    return key_id, key


def check_spec(tenant: str, targets: Sequence[str] | None) -> None:
    if not _TENANT.fullmatch(tenant):
        raise BadKeySpec(
            f"{tenant!r} is not a tenant name: letters, digits and _ . @ -, "
            "starting with a letter or digit"
        )
    try:
        for target in targets or ():
            split_name(target)
    except LookupError as error:
        raise BadKeySpec(str(error)) from None


def find_tenant(connection: Connection, key: str) -> Tenant | None:
    """The tenant of a key that exists and is not revoked."""
    row = connection.execute(
        select(api_keys.c.tenant, api_keys.c.targets, api_keys.c.operator).where(
            api_keys.c.key_hash == digest(key), api_keys.c.revoked_at.is_(None)
        )
    ).first()
    if row is None:
        return None
    targets = None if row.targets is None else tuple(row.targets)
    return Tenant(row.tenant, targets, row.operator)


def list_keys(connection: Connection, tenant: str | None = None) -> Sequence[Row[Any]]:
    query = select(api_keys).order_by(api_keys.c.tenant, api_keys.c.id)
    if tenant is not None:
        query = query.where(api_keys.c.tenant == tenant)
    return connection.execute(query).all()


def revoke_key(connection: Connection, key_id: int) -> bool:
    """Revoke a key for good; False if there is no such key, or it was already revoked."""
    done = connection.execute(
        update(api_keys)
        .where(api_keys.c.id == key_id, api_keys.c.revoked_at.is_(None))
        .values(revoked_at=func.now())
    )
    return done.rowcount == 1


def any_key(connection: Connection) -> bool:
    """Whether a key was ever made (revoked ones count: the operator chose that)."""
    return bool(connection.execute(select(exists().select_from(api_keys))).scalar())
