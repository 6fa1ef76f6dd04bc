"""Restricted-party screening (API version 1.1).

screening_list_version: one row per list import (SHA-256 of the file, when);
screening_entry: every version's entries; screening_entry_key and
screening_party_key: normalised names, aliases, addresses, officers and owners,
indexed by (key_type, key) so that screening looks up, never scans;
screening_match: each party's current matches; screening_clearance: admins'
clearances (each also an entry of kind `clearance` in the chain). Existing
parties have no keys until their next change or the next list import.

Revision ID: 0009
Revises: 0008
Create Date: 2026-12-02
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import ledger.store.models

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _text(length: int) -> sqlmodel.sql.sqltypes.AutoString:
    return sqlmodel.sql.sqltypes.AutoString(length=length)


def upgrade() -> None:
    op.create_table(
        "screening_list_version",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sha256", _text(64), nullable=False),
        sa.Column("imported_at", ledger.store.models.UTCDateTime(), nullable=False),
        sa.Column("source", _text(500), nullable=False),
        sa.Column("entries", sa.Integer(), nullable=False),
        sa.Column("actor", _text(64), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_list_version")),
    )
    op.create_index("ix_screening_list_version_imported", "screening_list_version",
                    ["imported_at", "id"], unique=False)
    op.create_index(op.f("ix_screening_list_version_sha256"), "screening_list_version",
                    ["sha256"], unique=False)
    op.create_table(
        "screening_entry",
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", _text(100), nullable=False),
        sa.Column("list_name", _text(200), nullable=False),
        sa.Column("name", _text(500), nullable=False),
        sa.Column("fingerprint", _text(64), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.PrimaryKeyConstraint("version_id", "entry_id", name=op.f("pk_screening_entry")),
    )
    op.create_table(
        "screening_entry_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("entry_id", _text(100), nullable=False),
        sa.Column("key_type", _text(16), nullable=False),
        sa.Column("key", _text(500), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_entry_key")),
    )
    op.create_index("ix_screening_entry_key_lookup", "screening_entry_key",
                    ["key_type", "key"], unique=False)
    op.create_table(
        "screening_party_key",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("party_kind", _text(16), nullable=False),
        sa.Column("party_id", _text(64), nullable=False),
        sa.Column("key_type", _text(16), nullable=False),
        sa.Column("key", _text(500), nullable=False),
        sa.Column("percent", sa.Integer(), nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_party_key")),
    )
    op.create_index("ix_screening_party_key_lookup", "screening_party_key",
                    ["key_type", "key"], unique=False)
    op.create_index("ix_screening_party_key_party", "screening_party_key",
                    ["party_kind", "party_id"], unique=False)
    op.create_table(
        "screening_match",
        sa.Column("party_kind", _text(16), nullable=False),
        sa.Column("party_id", _text(64), nullable=False),
        sa.Column("entry_id", _text(100), nullable=False),
        sa.Column("matched_on", _text(24), nullable=False),
        sa.Column("list_name", _text(200), nullable=False),
        sa.Column("score", sa.Float(), nullable=False),
        sa.Column("version_id", sa.Integer(), nullable=False),
        sa.Column("entry_fingerprint", _text(64), nullable=False),
        sa.Column("party_fingerprint", _text(64), nullable=False),
        sa.Column("via", _text(100), nullable=True),
        sa.Column("matched_at", ledger.store.models.UTCDateTime(), nullable=False),
        sa.PrimaryKeyConstraint("party_kind", "party_id", "entry_id", "matched_on",
                                name=op.f("pk_screening_match")),
    )
    op.create_index("ix_screening_match_party_id", "screening_match", ["party_id"],
                    unique=False)
    op.create_table(
        "screening_clearance",
        sa.Column("id", _text(40), nullable=False),
        sa.Column("party_kind", _text(16), nullable=False),
        sa.Column("party_id", _text(64), nullable=False),
        sa.Column("entry_id", _text(100), nullable=False),
        sa.Column("party_fingerprint", _text(64), nullable=False),
        sa.Column("entry_fingerprint", _text(64), nullable=False),
        sa.Column("reason", _text(500), nullable=False),
        sa.Column("actor", _text(64), nullable=False),
        sa.Column("cleared_at", ledger.store.models.UTCDateTime(), nullable=False),
        sa.Column("seq", sa.BigInteger(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_screening_clearance")),
    )
    op.create_index("ix_screening_clearance_party_entry", "screening_clearance",
                    ["party_id", "entry_id"], unique=False)


def downgrade() -> None:
    for index, table in (
        ("ix_screening_clearance_party_entry", "screening_clearance"),
        ("ix_screening_match_party_id", "screening_match"),
        ("ix_screening_party_key_party", "screening_party_key"),
        ("ix_screening_party_key_lookup", "screening_party_key"),
        ("ix_screening_entry_key_lookup", "screening_entry_key"),
        ("ix_screening_list_version_sha256", "screening_list_version"),
        ("ix_screening_list_version_imported", "screening_list_version"),
    ):
        op.drop_index(index, table_name=table)
    for table in ("screening_clearance", "screening_match", "screening_party_key",
                  "screening_entry_key", "screening_entry", "screening_list_version"):
        op.drop_table(table)
