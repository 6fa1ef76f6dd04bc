"""Merkle tree nodes: the complete subtrees (level >= 1) of the RFC 9162 tree over
entries, for inclusion and consistency proofs (ledger.merkle_store).

Derived data, filled by a catch-up step after commits (`ledger merkle catch-up`,
the merkle_nodes job, and before every proof) and rebuilt from entries by
`ledger merkle rebuild`; existing ledgers get theirs on the first catch-up.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-01
"""
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "merkle_node",
        sa.Column("level", sa.SmallInteger(), autoincrement=False, nullable=False),
        sa.Column("idx", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("hash", sa.LargeBinary(length=32), nullable=False),
        sa.PrimaryKeyConstraint("level", "idx", name=op.f("pk_merkle_node")),
    )


def downgrade() -> None:
    op.drop_table("merkle_node")
