"""Merkle proofs for auditors (RFC 9162): an entry's inclusion in the tree of a
signed head, and one head's tree extending another's.

Admins and auditors only. Operators see only their own entries (their lists
and history are scoped); a proof carries sibling hashes of other operators'
entries and subtrees and the tree size over time, which says nothing of their
contents but is the full history's shape, so it is not an operator's to read.

Each answer carries the root it leads to; an auditor accepts the proof only
after checking that root against a signed head they hold (`GET
/v1/audit/head`, a witness copy), with `ledger.merkle.verify_inclusion` /
`verify_consistency` (or the client's `verify_*_proof`). The server is not
trusted: nothing here needs to be.
"""

from __future__ import annotations

from typing import Annotated

import anyio.to_thread
import sqlalchemy as sa
from litestar import get
from litestar.params import QueryParameter
from msgspec import Struct
from sqlalchemy.orm import Session

from api.auth import ADMIN, AUDITOR, allow
from api.services import ServicesDep
from api.wire import problem_responses
from ledger.errors import InvalidInput, NotFound
from ledger.merkle_store import (
    MissingEntries,
    chain_size,
    prove_consistency,
    prove_inclusion,
)

MAX_SEQ = 2**62  # far beyond any ledger, inside BIGINT


class InclusionProofOut(Struct):
    seq: int
    head_seq: int
    leaf_index: int  # seq - 1
    tree_size: int  # head_seq
    leaf_hash: str  # SHA-256(0x00 || entry hash bytes), hex
    root: str  # RFC 9162 root of entries 1..head_seq, hex: compare with the signed head's
    proof: list[str]  # audit path, leaf side first, hex


class ConsistencyProofOut(Struct, rename={"first": "from", "second": "to"}):
    first: int
    second: int
    root_from: str
    root_to: str
    proof: list[str]


Seq = Annotated[int, QueryParameter(ge=1, le=MAX_SEQ, description="an entry's seq")]
HeadSeq = Annotated[int | None, QueryParameter(
    ge=1, le=MAX_SEQ, description="the tree size: a head's seq (default: the chain head)")]


def _inclusion(engine: sa.Engine, seq: int, head_seq: int | None) -> InclusionProofOut:
    with Session(engine) as session:
        head = chain_size(session)
        size = head if head_seq is None else head_seq
        if size > head:
            raise NotFound(f"no tree of size {size}: the chain head is at seq {head}")
        if seq > size:
            raise InvalidInput(f"seq {seq} is past head_seq {size}", field="seq")
        try:
            p = prove_inclusion(session, seq, size)
        except MissingEntries as exc:
            raise NotFound(str(exc)) from exc
    return InclusionProofOut(p.seq, p.head_seq, p.leaf_index, p.tree_size, p.leaf_hash.hex(),
                             p.root.hex(), [h.hex() for h in p.proof])


def _consistency(engine: sa.Engine, first: int, second: int | None) -> ConsistencyProofOut:
    with Session(engine) as session:
        head = chain_size(session)
        size = head if second is None else second
        if size > head:
            raise NotFound(f"no tree of size {size}: the chain head is at seq {head}")
        if first > size:
            raise InvalidInput(f"from {first} is past to {size}", field="from")
        try:
            p = prove_consistency(session, first, size)
        except MissingEntries as exc:
            raise NotFound(str(exc)) from exc
    return ConsistencyProofOut(p.first, p.second, p.root_first.hex(), p.root_second.hex(),
                               [h.hex() for h in p.proof])


@get("/v1/audit/proof/inclusion", guards=[allow(ADMIN, AUDITOR)], tags=["audit"],
     responses=problem_responses(403, 404, 422))
async def inclusion(services: ServicesDep, seq: Seq,
                    head_seq: HeadSeq = None) -> InclusionProofOut:
    """RFC 9162 inclusion proof of entry `seq` in the Merkle tree of entries
    1..`head_seq` (default: the chain head). Leaf i is the entry with seq i+1;
    404 when `head_seq` is past the chain head."""
    return await anyio.to_thread.run_sync(_inclusion, services.ledger.engine, seq, head_seq)


@get("/v1/audit/proof/consistency", guards=[allow(ADMIN, AUDITOR)], tags=["audit"],
     responses=problem_responses(403, 404, 422))
async def consistency(
    services: ServicesDep,
    first: Annotated[int, QueryParameter(name="from", ge=0, le=MAX_SEQ,
                                         description="the earlier tree size")],
    second: Annotated[int | None, QueryParameter(name="to", ge=0, le=MAX_SEQ,
                                                 description="the later tree size "
                                                 "(default: the chain head)")] = None,
) -> ConsistencyProofOut:
    """RFC 9162 consistency proof that the tree of `to` entries extends the tree
    of `from` entries (empty when from is 0 or equals to). 404 when `to` is past
    the chain head."""
    return await anyio.to_thread.run_sync(_consistency, services.ledger.engine, first, second)
