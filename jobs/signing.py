"""Signed checkpoints: Ed25519 over (seq, hash, time) of the chain head.

Every write transaction now signs its own head (ledger.heads, the `signed_head`
table); this hourly checkpoint predates that and is kept for bundles and tools
that read `chain_checkpoint`. The key code is ledger.heads' (re-exported here).

The signed message is versioned and canonical (see `checkpoint_message`) so
an outside auditor can re-create it byte for byte from a bundle. This module
needs no database for verification: `verify_signature` and
`checkpoint_message` are what `ledger verify-bundle` uses offline.
"""

from __future__ import annotations

import json

import sqlalchemy as sa
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from ledger.chain import format_time
from ledger.heads import (  # the key code lives in the ledger; re-exported here
    create_signing_key,
    key_id,
    load_public_pem,
    load_signing_key,
    public_pem,
    verify_signature,
)
from ledger.store.job_models import ChainCheckpoint
from ledger.store.models import ChainHead

__all__ = ["checkpoint_message", "create_signing_key", "key_id", "load_public_pem",
           "load_signing_key", "public_pem", "sign_checkpoint", "verify_signature"]
CHECKPOINT = ChainCheckpoint.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]
MESSAGE_PREFIX = b"tpp-ledger checkpoint v1\n"


def checkpoint_message(seq: int, chain_hash: str, at: str) -> bytes:
    """The exact bytes signed; `at` is RFC 3339 UTC as `ledger.chain.format_time` writes it."""
    body = json.dumps({"at": at, "hash": chain_hash, "seq": seq}, sort_keys=True,
                      separators=(",", ":"))
    return MESSAGE_PREFIX + body.encode()


def sign_checkpoint(ctx: JobContext) -> JobResult:
    """Signs the chain head unless it is already signed; skipped without a key."""
    path = ctx.settings.signing_key_path
    if not path:
        return JobResult.skipped("LEDGER_SIGNING_KEY_PATH is not set")
    key = load_signing_key(path)
    kid = key_id(key.public_key())
    now = ctx.now()
    # A write transaction from the start: it reads the head, then inserts.
    with Session(ctx.write_engine) as session, session.begin():
        head = session.execute(sa.select(CHAIN_HEAD.c.seq, CHAIN_HEAD.c.hash)).one()
        if head.seq == 0:
            return JobResult.ok(signed=0, reason="empty chain")
        done = session.execute(sa.select(CHECKPOINT.c.id).where(
            CHECKPOINT.c.kind == "signed", CHECKPOINT.c.seq == head.seq)).first()
        if done is not None:
            return JobResult.ok(signed=0, seq=head.seq, reason="head already signed")
        at = format_time(now)
        signature = key.sign(checkpoint_message(head.seq, head.hash, at)).hex()
        session.execute(sa.insert(CHECKPOINT).values(
            kind="signed", seq=head.seq, hash=head.hash, at=now, key_id=kid,
            signature=signature))
    return JobResult.ok(signed=1, seq=head.seq, hash=head.hash, key_id=kid)
