"""The api_keys table as SQLAlchemy sees it. Migration 0004 creates it."""

from __future__ import annotations

from sqlalchemy import BigInteger, Boolean, Column, DateTime, Identity, Table, Text, func, text
from sqlalchemy.dialects.postgresql import JSONB

from server.db import metadata

api_keys = Table(
    "api_keys",
    metadata,
    Column("id", BigInteger, Identity(), primary_key=True),
    Column("tenant", Text, nullable=False),
    Column("name", Text, nullable=False),
    # The sha256 of the key: a stolen table opens nothing.
    Column("key_hash", Text, nullable=False, unique=True),
    # The key's first characters, so that an operator can tell keys apart in a listing.
    Column("prefix", Text, nullable=False),
    # Targets this key may import into, within the operator's IMPORT_TARGETS; NULL: all of them.
    Column("targets", JSONB),
    # An operator's key also sees the service itself (GET /workers). Migration 0009.
    Column("operator", Boolean, nullable=False, server_default=text("false")),
    Column("created_at", DateTime(timezone=True), nullable=False, server_default=func.now()),
    Column("revoked_at", DateTime(timezone=True)),
)
