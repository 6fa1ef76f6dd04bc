"""The one door for ledger writes from the API.

Reservation commands go through the group committer (ledger.group_commit):
concurrent requests share one transaction and one fsync, each still decided
and answered on its own. Awaiting its future keeps the event loop free while
the writer thread works. Reference-data PUTs are rare and go to the Ledger in
a worker thread. Handlers never call the Ledger's write methods directly, so
changing how writes are batched touches only this module.
"""

from __future__ import annotations

import asyncio
from typing import Any

import anyio.to_thread

from ledger.errors import InvariantBroken, LedgerError
from ledger.group_commit import Committer
from ledger.reference import ConsigneeInput, LicenseInput, OperatorInput
from ledger.service import Ledger, Result
from ledger.views import (
    Command,
    CommitCommand,
    ReleaseCommand,
    ReservationView,
    ReserveCommand,
    ReserveOutcome,
    ReverseCommand,
)


class LedgerWrites:
    def __init__(self, ledger: Ledger, committer: Committer) -> None:
        self.ledger = ledger
        self.committer = committer

    async def _run(self, command: Command) -> Result:
        result = await asyncio.wrap_future(self.committer.submit(command))
        if isinstance(result, LedgerError):
            raise result
        return result

    async def reserve(self, command: ReserveCommand) -> ReserveOutcome:
        return _expect(await self._run(command), ReserveOutcome)

    async def reserve_many(self, commands: list[ReserveCommand]) -> list[Result]:
        """Each command's own outcome or LedgerError, in order (none is raised)."""
        futures = [asyncio.wrap_future(self.committer.submit(c)) for c in commands]
        return list(await asyncio.gather(*futures))

    async def commit(self, reservation_id: str, actor: str) -> ReservationView:
        return _expect(await self._run(CommitCommand(actor, reservation_id)), ReservationView)

    async def release(self, reservation_id: str, actor: str) -> ReservationView:
        return _expect(await self._run(ReleaseCommand(actor, reservation_id)), ReservationView)

    async def reverse(self, reservation_id: str, actor: str, reason: str) -> ReservationView:
        return _expect(await self._run(ReverseCommand(actor, reservation_id, reason)),
                       ReservationView)

    async def put_operator(self, data: OperatorInput) -> None:
        await anyio.to_thread.run_sync(self.ledger.put_operator, data)

    async def put_consignee(self, data: ConsigneeInput) -> None:
        await anyio.to_thread.run_sync(self.ledger.put_consignee, data)

    async def put_license(self, data: LicenseInput) -> None:
        await anyio.to_thread.run_sync(self.ledger.put_license, data)

    def close(self) -> None:
        self.committer.close()


def _expect(result: Any, kind: type[Any]) -> Any:
    if not isinstance(result, kind):
        raise InvariantBroken(f"ledger answered {type(result).__name__}, expected {kind.__name__}")
    return result
