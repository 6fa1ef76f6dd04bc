"""Every route of the API, in one explicit list (nothing registers itself on import).

To add a domain, write its module and append its handlers or controller here.
"""

from __future__ import annotations

from typing import Any

from api.routes import (
    audit,
    batch,
    exports,
    headroom,
    health,
    history,
    jobs,
    keys,
    proofs,
    screening,
)
from api.routes.reference import ReferenceController
from api.routes.reservations import ReservationController

ROUTES: list[Any] = [
    health.health,
    health.ready,
    ReferenceController,
    ReservationController,
    batch.reserve_batch,
    headroom.headroom,
    history.entries,
    history.balances,
    exports.entries_csv,
    exports.balances_csv,
    audit.verify,
    proofs.inclusion,
    proofs.consistency,
    audit.head,
    audit.keys,
    jobs.job_runs,
    jobs.findings,
    keys.keys,
    keys.revoke,
    screening.import_screening_list,
    screening.list_in_force,
    screening.screening_matches,
    screening.clear_match,
]
