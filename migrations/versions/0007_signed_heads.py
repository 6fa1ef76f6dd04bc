"""Signed heads: one row per committed write transaction that moved the chain head,
signed with Ed25519 by the service's key (never stored in the database).

Append-only like `entry` (triggers refuse UPDATE, DELETE and TRUNCATE).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import ledger.store.models

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = (
    "CREATE TRIGGER signed_head_no_update BEFORE UPDATE ON signed_head "
    "BEGIN SELECT RAISE(ABORT, 'signed_head is append-only: UPDATE refused'); END",
    "CREATE TRIGGER signed_head_no_delete BEFORE DELETE ON signed_head "
    "BEGIN SELECT RAISE(ABORT, 'signed_head is append-only: DELETE refused'); END",
)
POSTGRES_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION ledger_signed_head_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'signed_head is append-only: % refused', TG_OP; END $$",
    "CREATE TRIGGER signed_head_no_update_delete BEFORE UPDATE OR DELETE ON signed_head "
    "FOR EACH ROW EXECUTE FUNCTION ledger_signed_head_append_only()",
    "CREATE TRIGGER signed_head_no_truncate BEFORE TRUNCATE ON signed_head "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_signed_head_append_only()",
)


def upgrade() -> None:
    op.create_table(
        "signed_head",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("root", sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
        sa.Column("at", ledger.store.models.UTCDateTime(), nullable=False),
        sa.Column("key_id", sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
        sa.Column("signature", sqlmodel.sql.sqltypes.AutoString(length=128), nullable=False),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_signed_head")),
    )
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_TRIGGERS if dialect == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table("signed_head")  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_signed_head_append_only()")
