"""Indexes for reading a bucket's history and a consignee's LPP receipts.

line_draw(bucket_id): balances `as_of` find every line that drew on an LPP group
bucket, whoever its members are today. reservation_line(consignee_id): a
consignee's group change checks its LPP receipts of the year.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-22
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_line_draw_bucket", "line_draw", ["bucket_id"])
    op.create_index("ix_reservation_line_consignee", "reservation_line", ["consignee_id"])


def downgrade() -> None:
    op.drop_index("ix_reservation_line_consignee", table_name="reservation_line")
    op.drop_index("ix_line_draw_bucket", table_name="line_draw")
