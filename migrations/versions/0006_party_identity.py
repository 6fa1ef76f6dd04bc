"""Parties' headquarters, ultimate parents and identity (API version 1.1).

operator: parent_country (its ultimate parent's headquarters; NULL: its own
parent), address, officers, owners. consignee: hq_country (NULL: where it is
located), parent_country (NULL: same as its headquarters), address,
officers, owners. officers and owners are JSON lists; rows from before this
revision get [] (the columns' server default), every other new column NULL,
which is what a version 1 body means.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-24
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _identity_columns() -> list[sa.Column]:
    return [
        sa.Column("address", sqlmodel.sql.sqltypes.AutoString(length=500), nullable=True),
        sa.Column("officers", sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
        sa.Column("owners", sa.JSON(), server_default=sa.text("'[]'"), nullable=False),
    ]


def upgrade() -> None:
    with op.batch_alter_table("operator", schema=None) as batch_op:
        batch_op.add_column(sa.Column("parent_country",
                                      sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True))
        for column in _identity_columns():
            batch_op.add_column(column)
    with op.batch_alter_table("consignee", schema=None) as batch_op:
        batch_op.add_column(sa.Column("hq_country",
                                      sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True))
        batch_op.add_column(sa.Column("parent_country",
                                      sqlmodel.sql.sqltypes.AutoString(length=2), nullable=True))
        for column in _identity_columns():
            batch_op.add_column(column)


def downgrade() -> None:
    with op.batch_alter_table("consignee", schema=None) as batch_op:
        for name in ("owners", "officers", "address", "parent_country", "hq_country"):
            batch_op.drop_column(name)
    with op.batch_alter_table("operator", schema=None) as batch_op:
        for name in ("owners", "officers", "address", "parent_country"):
            batch_op.drop_column(name)
