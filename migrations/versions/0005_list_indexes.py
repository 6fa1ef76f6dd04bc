"""Indexes for the list endpoints: every page is an index range in the page's order.

reservation(created_at, id): GET /v1/reservations for admins and auditors;
reservation(owner, created_at, id): a vendor's own, replacing reservation(owner),
whose every use it serves (so the write path keeps the same number of
reservation indexes plus one). consignee(operator_id, id) and
license(consignee_id, id): an operator key's own consignees and licences.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-23
"""
from collections.abc import Sequence

from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_index("ix_reservation_created_id", "reservation", ["created_at", "id"])
    op.create_index("ix_reservation_owner_created_id", "reservation",
                    ["owner", "created_at", "id"])
    op.drop_index("ix_reservation_owner", table_name="reservation")
    op.create_index("ix_consignee_operator_id", "consignee", ["operator_id", "id"])
    op.create_index("ix_license_consignee_id", "license", ["consignee_id", "id"])


def downgrade() -> None:
    op.drop_index("ix_license_consignee_id", table_name="license")
    op.drop_index("ix_consignee_operator_id", table_name="consignee")
    op.create_index("ix_reservation_owner", "reservation", ["owner"])
    op.drop_index("ix_reservation_owner_created_id", table_name="reservation")
    op.drop_index("ix_reservation_created_id", table_name="reservation")
