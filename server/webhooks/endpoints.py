"""Each tenant's webhook signing secret and default endpoint.

The secret is made by `csv-import-keys webhook` and shown there once. It must be kept as it
is to sign with (an HMAC key), so the table is as sensitive as the database's password.
"""

from __future__ import annotations

import base64
import secrets
from dataclasses import dataclass

from sqlalchemy import Connection, select
from sqlalchemy.dialects.postgresql import insert

from server.webhooks.tables import tenant_webhooks

SECRET_PREFIX = "whsec_"  # noqa: S105 - the format's prefix, not a secret
SECRET_BYTES = 32


@dataclass(frozen=True)
class Endpoint:
    tenant: str
    secret: str
    default_url: str | None


def make_secret() -> str:
    """A Standard Webhooks secret: `whsec_` and base64 of random bytes."""
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(SECRET_BYTES)).decode()


def endpoint(connection: Connection, tenant: str) -> Endpoint | None:
    row = connection.execute(
        select(tenant_webhooks).where(tenant_webhooks.c.tenant == tenant)
    ).first()
    if row is None:
        return None
    return Endpoint(row.tenant, row.secret, row.default_url)


def configure(
    connection: Connection,
    tenant: str,
    default_url: str | None,
    keep_url: bool,
    new_secret: bool,
) -> str | None:
    """Set the tenant's default endpoint (unless `keep_url`), and make it a secret if it
    has none or `new_secret` asks for one. Returns the new secret, or None if it kept its
    own."""
    before = endpoint(connection, tenant)
    secret = make_secret() if before is None or new_secret else before.secret
    url = before.default_url if keep_url and before is not None else default_url
    statement = insert(tenant_webhooks).values(tenant=tenant, secret=secret, default_url=url)
    connection.execute(
        statement.on_conflict_do_update(
            index_elements=[tenant_webhooks.c.tenant],
            set_={
                "secret": secret,
                "default_url": url,
                "updated_at": statement.excluded.updated_at,
            },
        )
    )
    return None if before is not None and not new_secret else secret
