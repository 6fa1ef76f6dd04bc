"""API key lifecycle: optional expiry, and an append-only record of who created
or revoked which key, and when.

Keys that exist before this revision get a `created` event (and a `revoked`
one when already revoked) at their recorded times, with the actor
`migration-0004` (who made them was never recorded).

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-23
"""
from collections.abc import Sequence

import sqlalchemy as sa
import sqlmodel.sql.sqltypes
from alembic import op

import ledger.store.models

revision: str = '0004'
down_revision: str | None = '0003'
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_TRIGGERS = (
    "CREATE TRIGGER api_key_event_no_update BEFORE UPDATE ON api_key_event "
    "BEGIN SELECT RAISE(ABORT, 'api_key_event is append-only: UPDATE refused'); END",
    "CREATE TRIGGER api_key_event_no_delete BEFORE DELETE ON api_key_event "
    "BEGIN SELECT RAISE(ABORT, 'api_key_event is append-only: DELETE refused'); END",
)
POSTGRES_TRIGGERS = (
    "CREATE OR REPLACE FUNCTION ledger_api_key_event_append_only() RETURNS trigger "
    "LANGUAGE plpgsql AS $$ BEGIN "
    "RAISE EXCEPTION 'api_key_event is append-only: % refused', TG_OP; END $$",
    "CREATE TRIGGER api_key_event_no_update_delete BEFORE UPDATE OR DELETE ON api_key_event "
    "FOR EACH ROW EXECUTE FUNCTION ledger_api_key_event_append_only()",
    "CREATE TRIGGER api_key_event_no_truncate BEFORE TRUNCATE ON api_key_event "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_api_key_event_append_only()",
)


def upgrade() -> None:
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.add_column(sa.Column('expires_at', ledger.store.models.UTCDateTime(),
                                      nullable=True))

    op.create_table('api_key_event',
    sa.Column('id', sa.Integer(), nullable=False),
    sa.Column('key_id', sqlmodel.sql.sqltypes.AutoString(length=40), nullable=False),
    sa.Column('action', sqlmodel.sql.sqltypes.AutoString(length=16), nullable=False),
    sa.Column('actor', sqlmodel.sql.sqltypes.AutoString(length=64), nullable=False),
    sa.Column('at', ledger.store.models.UTCDateTime(), nullable=False),
    sa.PrimaryKeyConstraint('id', name=op.f('pk_api_key_event'))
    )
    with op.batch_alter_table('api_key_event', schema=None) as batch_op:
        batch_op.create_index('ix_api_key_event_key', ['key_id', 'id'], unique=False)

    op.execute("INSERT INTO api_key_event (key_id, action, actor, at) "
               "SELECT id, 'created', 'migration-0004', created_at FROM api_key")
    op.execute("INSERT INTO api_key_event (key_id, action, actor, at) "
               "SELECT id, 'revoked', 'migration-0004', revoked_at FROM api_key "
               "WHERE revoked_at IS NOT NULL")
    dialect = op.get_bind().dialect.name
    for statement in POSTGRES_TRIGGERS if dialect == "postgresql" else SQLITE_TRIGGERS:
        op.execute(statement)


def downgrade() -> None:
    op.drop_table('api_key_event')  # its triggers go with it
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP FUNCTION ledger_api_key_event_append_only()")
    with op.batch_alter_table('api_key', schema=None) as batch_op:
        batch_op.drop_column('expires_at')
