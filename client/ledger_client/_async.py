"""The asynchronous client (the same methods as LedgerClient, awaited)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import date, datetime
from types import TracebackType
from typing import Any

import httpx

from ledger_client._core import (
    DEFAULT_TIMEOUT,
    USER_AGENT,
    BatchResult,
    Call,
    CallBuilder,
    Page,
    RetryPolicy,
    batch_items,
    batch_results,
    decode,
    params,
    retry_after_of,
)
from ledger_client.errors import LedgerProblem

C = CallBuilder


class AsyncLedgerClient:
    """Async client. Every method raises a `LedgerProblem` subclass on a non-2xx answer.

    >>> async with AsyncLedgerClient("http://127.0.0.1:8000", api_key) as ledger:
    ...     async for entry in ledger.entries(country="AE"):
    ...         print(entry["seq"])
    """

    def __init__(self, base_url: str, api_key: str | None = None, *,
                 retry: RetryPolicy | None = None, timeout: float = DEFAULT_TIMEOUT,
                 transport: httpx.AsyncBaseTransport | None = None,
                 headers: Mapping[str, str] | None = None) -> None:
        all_headers = {"User-Agent": USER_AGENT, **(headers or {})}
        if api_key:
            all_headers["Authorization"] = f"Bearer {api_key}"
        self.retry = retry or RetryPolicy()
        self._http = httpx.AsyncClient(base_url=base_url, headers=all_headers, timeout=timeout,
                                  transport=transport)

    async def close(self) -> None:
        await self._http.aclose()

    async def __aenter__(self) -> AsyncLedgerClient:
        return self

    async def __aexit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        await self.close()

    # -- transport ----------------------------------------------------------------

    async def send(self, call: Call) -> Any:
        """Sends `call`, retrying 429 / 503 / transport errors under the retry policy
        (the same call each time: same Idempotency-Key); returns the decoded body."""
        started = time.monotonic()
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._http.request(call.method, call.path, params=call.params,
                                              json=call.json, headers=call.headers)
            except httpx.TransportError:
                wait = self.retry.wait_before_next(attempt, started, None)
                if wait is None:
                    raise
                await asyncio.sleep(wait)
                continue
            if response.status_code in (429, 503):
                wait = self.retry.wait_before_next(attempt, started, retry_after_of(response))
                if wait is not None:
                    await asyncio.sleep(wait)
                    continue
            return decode(response)

    async def request(self, method: str, path: str, *, json: Any = None,
                headers: Mapping[str, str] | None = None, **query: Any) -> Any:
        """Any request, with the same retries and typed errors (an escape hatch)."""
        return await self.send(Call(method, path, params=params(**query), json=json,
                              headers=dict(headers or {})))

    async def page(self, path: str, cursor: str | None = None, **query: Any) -> Page:
        """One page of a cursor-paged list (`/v1/entries`, `/v1/operators`, ...)."""
        body = await self.send(C.get(path, cursor=cursor, **query))
        return Page(body["items"], body.get("next_cursor"))

    async def iterate(self, path: str, **query: Any) -> AsyncIterator[dict[str, Any]]:
        """Every item of a cursor-paged list, fetching page after page lazily."""
        cursor: str | None = None
        while True:
            page = await self.page(path, cursor, **query)
            for item in page.items:
                yield item
            if not page.next_cursor:
                return
            cursor = page.next_cursor

    # -- health -------------------------------------------------------------------

    async def health(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get("/health"))
        return result

    # -- reference data -------------------------------------------------------------

    async def put_operator(self, operator_id: str, *, name: str, hq_country: str,
                     veu: Mapping[str, Any] | None = None,
                     footprint: Mapping[str, int] | None = None,
                     **fields: Any) -> dict[str, Any]:
        body = {"name": name, "hq_country": hq_country, "veu": veu,
                "footprint": dict(footprint or {}), **fields}
        result: dict[str, Any] = await self.send(C.put_operator(operator_id, body))
        return result

    async def put_consignee(self, consignee_id: str, *, name: str, country: str,
                      operator_id: str | None = None, group_id: str | None = None,
                      **fields: Any) -> dict[str, Any]:
        body = {"name": name, "country": country, "operator_id": operator_id,
                "group_id": group_id, **fields}
        result: dict[str, Any] = await self.send(C.put_consignee(consignee_id, body))
        return result

    async def put_license(self, license_id: str, *, country: str, tpp: int,
                    valid_from: date | str, valid_to: date | str,
                    consignee_id: str | None = None, **fields: Any) -> dict[str, Any]:
        body = {"country": country, "consignee_id": consignee_id, "tpp": tpp,
                "valid_from": valid_from, "valid_to": valid_to, **fields}
        result: dict[str, Any] = await self.send(C.put_license(license_id, body))
        return result

    async def get_operator(self, operator_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get(f"/v1/operators/{operator_id}"))
        return result

    async def get_consignee(self, consignee_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get(f"/v1/consignees/{consignee_id}"))
        return result

    async def get_license(self, license_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get(f"/v1/licenses/{license_id}"))
        return result

    def list_operators(self, *, limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.iterate("/v1/operators", limit=limit)

    def list_consignees(self, *, limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.iterate("/v1/consignees", limit=limit)

    def list_licenses(self, *, limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.iterate("/v1/licenses", limit=limit)

    async def chips(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = await self.send(C.get("/v1/chips"))
        return result

    async def policy(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get("/v1/policy"))
        return result

    # -- reservations -----------------------------------------------------------------

    async def reserve(self, lines: Sequence[Mapping[str, Any]], *, hold_seconds: int | None = None,
                idempotency_key: str | None = None) -> dict[str, Any]:
        """Holds quota for every line or none. The Idempotency-Key (a uuid4 unless
        given) is the same on every retry, so a retry never holds twice."""
        result: dict[str, Any] = await self.send(C.reserve(lines, hold_seconds, idempotency_key))
        return result

    async def evaluate(self, lines: Sequence[Mapping[str, Any]], *,
                 hold_seconds: int | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.evaluate(lines, hold_seconds))
        return result

    async def commit(self, reservation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.transition(reservation_id, "commit"))
        return result

    async def release(self, reservation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.transition(reservation_id, "release"))
        return result

    async def get_reservation(self, reservation_id: str) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get(f"/v1/reservations/{reservation_id}"))
        return result

    def list_reservations(self, *, status: str | None = None,
                          since: datetime | str | None = None,
                          until: datetime | str | None = None,
                          limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.iterate("/v1/reservations", status=status, since=since, until=until,
                            limit=limit)

    async def reserve_batch(self, reservations: Sequence[Mapping[str, Any]]) -> list[BatchResult]:
        """Many reservations in one request (`{"lines": [...], "hold_seconds": ...}`
        each); each gets its own Idempotency-Key (uuid4 unless it has
        `idempotency_key`) and its own answer."""
        items = batch_items(reservations)
        return batch_results(items, await self.send(C.batch(items)))

    # -- headroom and history -------------------------------------------------------------

    async def headroom(self, country: str, operator_id: str | None = None,
                 consignee_id: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get(
            "/v1/headroom", country=country, operator_id=operator_id,
            consignee_id=consignee_id))
        return result

    def entries(self, *, country: str | None = None, operator_id: str | None = None,
                consignee_id: str | None = None, kind: str | None = None,
                since: datetime | str | None = None, until: datetime | str | None = None,
                limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        """Every entry matching the filters, in seq order (`limit`: page size)."""
        return self.iterate("/v1/entries", country=country, operator_id=operator_id,
                            consignee_id=consignee_id, kind=kind, since=since, until=until,
                            limit=limit)

    async def balances(self, *, as_of: datetime | str | None = None, country: str | None = None,
                 operator_id: str | None = None,
                 consignee_id: str | None = None) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get(
            "/v1/balances", as_of=as_of, country=country, operator_id=operator_id,
            consignee_id=consignee_id))
        return result

    def entries_csv(self, *, country: str | None = None, operator_id: str | None = None,
                    consignee_id: str | None = None, kind: str | None = None,
                    since: datetime | str | None = None,
                    until: datetime | str | None = None) -> AsyncIterator[str]:
        """`/v1/entries.csv` line by line (header first), streamed as the service sends it.
        Retried like any call until the answer starts; a problem answer raises."""
        return self.stream_lines(C.get(
            "/v1/entries.csv", country=country, operator_id=operator_id,
            consignee_id=consignee_id, kind=kind, since=since, until=until))

    def balances_csv(self, *, as_of: datetime | str | None = None,
                     country: str | None = None, operator_id: str | None = None,
                     consignee_id: str | None = None) -> AsyncIterator[str]:
        """`/v1/balances.csv` line by line (header first)."""
        return self.stream_lines(C.get(
            "/v1/balances.csv", as_of=as_of, country=country, operator_id=operator_id,
            consignee_id=consignee_id))

    async def stream_lines(self, call: Call) -> AsyncIterator[str]:
        """The answer's text lines as they arrive; retries (429 / 503 / transport errors)
        only until the answer starts."""
        started = time.monotonic()
        attempt = 0
        streaming = False  # once lines were handed out, a fault is raised, never retried
        while True:
            attempt += 1
            try:
                async with self._http.stream(call.method, call.path, params=call.params,
                                             headers=call.headers) as response:
                    wait = None
                    if response.status_code in (429, 503):
                        wait = self.retry.wait_before_next(attempt, started,
                                                           retry_after_of(response))
                    if wait is None:
                        if not response.is_success:
                            await response.aread()
                            decode(response)  # raises the typed problem
                        streaming = True
                        async for text in response.aiter_lines():
                            yield text
                        return
            except httpx.TransportError:
                wait = None if streaming else self.retry.wait_before_next(attempt, started,
                                                                           None)
                if wait is None:
                    raise
            await asyncio.sleep(wait)

    async def verify(self) -> dict[str, Any]:
        result: dict[str, Any] = await self.send(C.get("/v1/audit/verify"))
        return result

    async def inclusion_proof(self, seq: int, head_seq: int | None = None) -> dict[str, Any]:
        """RFC 9162 inclusion proof of entry `seq` in the tree of `head_seq` entries
        (default: the head). Check it offline with `ledger_client.merkle.check_inclusion`
        against the root of a signed head you verified, not the root it carries."""
        result: dict[str, Any] = await self.send(C.get(
            "/v1/audit/proof/inclusion", seq=seq, head_seq=head_seq))
        return result

    async def consistency_proof(self, first: int, second: int | None = None) -> dict[str, Any]:
        """RFC 9162 proof that the tree of `second` entries (default: the head) extends
        the tree of `first`; check it with `ledger_client.merkle.check_consistency`."""
        result: dict[str, Any] = await self.send(C.get(
            "/v1/audit/proof/consistency", **{"from": first, "to": second}))
        return result

    # -- keys ---------------------------------------------------------------------------

    def list_keys(self, *, limit: int | None = None) -> AsyncIterator[dict[str, Any]]:
        return self.iterate("/v1/keys", limit=limit)

    async def revoke_key(self, key_id: str) -> None:
        await self.send(C.revoke_key(key_id))


__all__ = ["AsyncLedgerClient", "LedgerProblem"]
