"""Audit: walk the hash chain and say whether anybody rewrote history; the latest
signed head and the public keys that verify heads."""

from __future__ import annotations

import anyio.to_thread
from litestar import get
from litestar.exceptions import NotFoundException
from msgspec import Struct

from api.auth import ADMIN, AUDITOR, OPERATOR, VENDOR, allow
from api.schemas import VerifyOut
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.heads import KeyRing, audit_verify, latest_head


class SignedHeadOut(Struct):
    """The chain head after a committed write, signed with Ed25519. The signed bytes are
    b"tpp-ledger head v1\\n" + compact sorted JSON of {"v": 1, "seq", "hash", "root",
    "at", "key_id"}."""

    seq: int
    hash: str
    root: str
    at: str
    key_id: str
    signature: str


class PublicKeyOut(Struct):
    key_id: str
    public_key: str  # PEM (SubjectPublicKeyInfo)
    current: bool  # signs new heads; the others are retired, still accepted


class KeysOut(Struct):
    current_key_id: str | None
    keys: list[PublicKeyOut]


def _keys(services: ServicesDep) -> KeyRing:
    heads = services.ledger.heads
    if heads is not None:
        return heads.keys
    settings = services.settings
    return KeyRing.load(None, settings.signing_public_keys)


@get("/v1/audit/verify", guards=[allow(ADMIN, AUDITOR)], tags=["audit"],
     responses=problem_responses(403))
async def verify(services: ServicesDep) -> VerifyOut:
    """Checks every entry: seq gapless, each linked to the previous hash, each hash right;
    then that chain_head names the last entry and every signed head stored in the
    database (signature, hash and Merkle root at its seq; nothing past the last one
    unsigned when signing). Witnesses outside the database: `ledger verify --witness`.

    Streams the whole chain (constant memory): an auditor's question, not a hot path.
    """
    keys = _keys(services)
    verdict = await anyio.to_thread.run_sync(audit_verify, services.ledger.engine, keys)
    return VerifyOut(ok=verdict.ok, entries=verdict.entries, head=verdict.head,
                     first_bad_seq=verdict.first_bad_seq, reason=verdict.reason)


@get("/v1/audit/head", guards=[allow(ADMIN, AUDITOR, OPERATOR, VENDOR)], tags=["audit"],
     responses=problem_responses(403, 404))
async def head(services: ServicesDep) -> SignedHeadOut:
    """The latest signed head: keep it (it is cumulative) and check later that the chain
    still extends it (`ledger verify --witness`, or a consistency proof). 404 when no
    head was ever signed (no signing key configured)."""
    latest = await anyio.to_thread.run_sync(latest_head, services.ledger.engine)
    if latest is None:
        raise NotFoundException("no signed head: the ledger has no signing key configured, "
                                "or nothing was written since it was")
    return SignedHeadOut(**latest.doc())


@get("/v1/audit/keys", guards=[allow(ADMIN, AUDITOR, OPERATOR, VENDOR)], tags=["audit"],
     responses=problem_responses(403))
async def keys(services: ServicesDep) -> KeysOut:
    """Public keys that verify signed heads, by key id: the current one and the retired
    ones (LEDGER_SIGNING_PUBLIC_KEYS). Public material; pin it out of band too."""
    ring = _keys(services)
    current = ring.current_id
    return KeysOut(current_key_id=current, keys=[
        PublicKeyOut(key_id=kid, public_key=pem, current=kid == current)
        for kid, pem in ring.pems().items()])
