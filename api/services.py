"""What the handlers work with, built once per app in its lifespan (never at import)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from litestar.di import NamedDependency

from api.cache import HeadroomCache, build_headroom_cache
from api.principals import PrincipalCache, RevocationListener
from api.throttle import Throttle
from api.writes import LedgerWrites
from ledger.bootstrap import open_ledger
from ledger.clock import Clock
from ledger.group_commit import Committer, GroupCommitter
from ledger.queries import LedgerReader
from ledger.service import Ledger
from ledger.settings import Settings
from ledger.writer_process import RemoteCommitter


@dataclass
class Services:
    settings: Settings
    ledger: Ledger
    reader: LedgerReader
    writes: LedgerWrites
    headroom: HeadroomCache
    throttle: Throttle
    principals: PrincipalCache
    revocations: RevocationListener | None = None  # with Redis: revoked keys pushed here

    async def close(self) -> None:
        if self.revocations is not None:
            await self.revocations.close()
        self.writes.close()
        await self.throttle.close()
        self.ledger.engine.dispose()


def build_services(settings: Settings, clock: Clock | None = None) -> Services:
    """Engine, ledger, reader, cache, throttle: the app's whole wiring, in one place."""
    ledger = open_ledger(settings, clock)
    reader = LedgerReader(ledger.engine, ledger.rule_set)
    headroom = build_headroom_cache(reader, settings.redis_url,
                                    namespace=_namespace(settings.database_url))
    # The cache hears of every commit, whoever made it (API, jobs, CLI in this process).
    ledger.on_commit(headroom.buckets_changed)
    committer: Committer
    if settings.writer_socket:  # `ledger serve --writer-process`: writes in that process
        remote = RemoteCommitter(settings.writer_socket)
        remote.on_commit(headroom.buckets_changed)  # before each acknowledgement
        committer = remote
    else:
        committer = GroupCommitter(ledger)
    principals = PrincipalCache()
    revocations = None
    if settings.redis_url:
        revocations = RevocationListener(settings.redis_url, principals)
        revocations.start()
    return Services(
        settings=settings,
        ledger=ledger,
        reader=reader,
        writes=LedgerWrites(ledger, committer),
        headroom=headroom,
        throttle=Throttle(settings.rate_limit_per_minute, settings.redis_url),
        principals=principals,
        revocations=revocations,
    )


def _namespace(database_url: str) -> str:
    """Cache keys are per database, so ledgers sharing one Redis never see each other's."""
    return hashlib.sha256(database_url.encode()).hexdigest()[:12]


# How handlers ask for the services: an explicit, named dependency (Litestar 2.24+
# deprecates implicit ones).
ServicesDep = NamedDependency[Services]
