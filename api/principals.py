"""Recently authenticated keys, so each request is not a database read."""

from __future__ import annotations

import threading
import time

from ledger.keys import Principal

PRINCIPAL_TTL_S = 30.0  # a key seen recently is not looked up again for this long


class PrincipalCache:
    """Recently authenticated keys (by hash), so each request is not a database read."""

    def __init__(self) -> None:
        self._items: dict[str, tuple[Principal, float]] = {}
        self._lock = threading.Lock()

    def get(self, digest: str) -> Principal | None:
        with self._lock:
            item = self._items.get(digest)
        if item is None or item[1] < time.monotonic():
            return None
        return item[0]

    def put(self, digest: str, principal: Principal) -> None:
        with self._lock:
            if len(self._items) > 10_000:
                self._items.clear()
            self._items[digest] = (principal, time.monotonic() + PRINCIPAL_TTL_S)
