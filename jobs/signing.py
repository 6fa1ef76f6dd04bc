"""Signed checkpoints: Ed25519 over (seq, hash, time) of the chain head.

The signed message is versioned and canonical (see `checkpoint_message`) so
an outside auditor can re-create it byte for byte from a bundle. This module
needs no database for verification: `verify_signature` and
`checkpoint_message` are what `ledger verify-bundle` uses offline.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import sqlalchemy as sa
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey
from sqlalchemy.orm import Session

from jobs.context import JobContext, JobResult
from ledger.chain import format_time
from ledger.store.job_models import ChainCheckpoint
from ledger.store.models import ChainHead

CHECKPOINT = ChainCheckpoint.__table__  # type: ignore[attr-defined]
CHAIN_HEAD = ChainHead.__table__  # type: ignore[attr-defined]
MESSAGE_PREFIX = b"tpp-ledger checkpoint v1\n"


def create_signing_key(path: Path) -> str:
    """Writes a new Ed25519 private key (PEM, mode 0600); returns its public key PEM.
    Refuses to overwrite an existing file: losing a signing key is not undoable."""
    key = Ed25519PrivateKey.generate()
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                            serialization.NoEncryption())
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "wb") as out:
        out.write(pem)
    return public_pem(key.public_key())


def load_signing_key(path: str) -> Ed25519PrivateKey:
    key = serialization.load_pem_private_key(Path(path).read_bytes(), password=None)
    if not isinstance(key, Ed25519PrivateKey):
        raise ValueError(f"{path} is not an Ed25519 private key")
    return key


def public_pem(key: Ed25519PublicKey) -> str:
    return key.public_bytes(serialization.Encoding.PEM,
                            serialization.PublicFormat.SubjectPublicKeyInfo).decode()


def load_public_pem(pem: str) -> Ed25519PublicKey:
    key = serialization.load_pem_public_key(pem.encode())
    if not isinstance(key, Ed25519PublicKey):
        raise ValueError("not an Ed25519 public key")
    return key


def key_id(key: Ed25519PublicKey) -> str:
    """First 16 hex digits of sha256(raw public key): names the key in checkpoints."""
    raw = key.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def checkpoint_message(seq: int, chain_hash: str, at: str) -> bytes:
    """The exact bytes signed; `at` is RFC 3339 UTC as `ledger.chain.format_time` writes it."""
    body = json.dumps({"at": at, "hash": chain_hash, "seq": seq}, sort_keys=True,
                      separators=(",", ":"))
    return MESSAGE_PREFIX + body.encode()


def verify_signature(public: Ed25519PublicKey, signature_hex: str, message: bytes) -> bool:
    try:
        public.verify(bytes.fromhex(signature_hex), message)
    except (InvalidSignature, ValueError):
        return False
    return True


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
