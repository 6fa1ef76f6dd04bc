"""The chain walk at full speed on PostgreSQL: rows as COPY text, hashed from bytes.

`ledger.audit.verify_chain` feeds SQLAlchemy rows to `ChainVerifier`; on a large
ledger most of its time goes to building row objects, datetimes and dicts. Here a
range of entries is read with raw psycopg (`COPY (SELECT ...) TO STDOUT`, one line
of tab-separated text per entry) and the canonical bytes of each entry are
assembled from the line's fields with one byte template.

The bytes equal those of `ledger.chain.canonical_bytes` only where that is
evident, so the template is used only for rows it can prove:

- string fields: free of `"`, `\\` and control characters, a field's JSON is its
  UTF-8 text between quotes (the common case, checked over the whole line at once);
  otherwise COPY's escapes are undone and the text encoded by orjson, as
  canonical_bytes encodes it; an escape COPY never writes is not proven;
- NULL (`\\N`) only in the two nullable fields (idempotency_key, note: JSON `null`);
- times as PostgreSQL prints `timestamp` (DateStyle ISO, set for the walk):
  `YYYY-MM-DD HH:MM:SS[.f{1,6}]`, padded to microseconds, `T` ... `Z`;
- encoding exactly `1`; integers as PostgreSQL prints them (as JSON prints them);
  the column types are checked once (`copy_walk_usable`);
- draws: a list of lists of str/int with an int TPP at index 3 (the checks of
  `canonical_bytes`, stricter), without escapes, compacted by orjson as
  `canonical_bytes` does.

Every other row, and every row whose seq, prev_hash or hash does not check out, is
read again through SQLAlchemy and given to the reference `ChainVerifier`, which
decides it (and names the reason) exactly as the plain walk does; the fast walk
resumes after it when the reference accepts it. So the fast path only ever accepts
bytes the reference would hash, and every failure is named by the reference.
"""

from __future__ import annotations

import hashlib
import json
import re
from binascii import hexlify
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import msgspec
import orjson

from ledger.chain import ChainReport, ChainVerifier

if TYPE_CHECKING:  # workers import this module alone: SQLAlchemy only when a row needs it
    import sqlalchemy as sa
    from sqlalchemy.orm import Session

# The COPY column order: seq and the two hashes, the non-null fields in canonical
# (sorted) order, then the nullable ones and draws last (their checks differ).
COPY_COLUMNS = ("seq", "prev_hash", "hash", "actor", "consignee_id", "country",
                "effective_at", "encoding", "kind", "line_no", "operator_id", "path",
                "recorded_at", "reservation_id", "rule_set", "rule_set_version", "tpp",
                "idempotency_key", "note", "draws")
# canonical_bytes' output for encoding 1 with every field spliced in as JSON text.
TEMPLATE = (b'{"actor":"%s","consignee_id":"%s","country":"%s","draws":%s,'
            b'"effective_at":"%sT%sZ","encoding":1,"idempotency_key":%s,"kind":"%s",'
            b'"line_no":%s,"note":%s,"operator_id":"%s","path":"%s",'
            b'"recorded_at":"%sT%sZ","reservation_id":"%s","rule_set":"%s",'
            b'"rule_set_version":"%s","seq":%s,"tpp":%s}')
TEMPLATE_QUOTED = TEMPLATE.replace(b'"%s"', b"%s")  # string fields given as JSON
# What a proven string field never holds: JSON escapes it (quote, backslash, control
# characters); COPY text writes every escape and NULL with a backslash. Tab is the
# field separator here, so the search over several fields leaves it out.
_UNPROVEN = re.compile(rb'[\x00-\x08\x0a-\x1f"\\]')
# The bytes a proven field may hold, for `bytes.translate(None, delete=...)`: what is
# left after deleting them is empty exactly when _UNPROVEN finds nothing (and much
# faster to learn over a whole line).
_PROVEN_BYTES = bytes(b for b in range(256) if not _UNPROVEN.match(bytes([b])))
_NULL = b"\\N"


def pg_conninfo(url: str) -> str:
    """A libpq connection URI from a SQLAlchemy URL (`postgresql+psycopg://...`): the
    same URI without the driver (no SQLAlchemy import: workers stay light)."""
    scheme, sep, rest = url.partition("://")
    if not sep or scheme.split("+")[0] not in ("postgresql", "postgres"):
        raise ValueError("not a PostgreSQL URL")
    return "postgresql://" + rest


# The usual shape of draws, [[kind, key, period, tpp], ...], decoded and type-checked in
# C (strict: no bool or float where an int is due); anything else takes draws_json.
_DRAWS4 = msgspec.json.Decoder(list[tuple[str | int, str | int, str | int, int]])
# In draws, quotes are JSON's own; a backslash or control character is not proven.
_DRAWS_PROVEN_BYTES = bytes(b for b in range(256) if b >= 0x20 and b != 0x5C)


def draws_json(text: bytes) -> bytes | None:
    """The canonical JSON of a stored draws value (COPY text, no escapes), or None
    when `canonical_bytes` might do anything but compact it as is: checked as it
    checks (each draw's TPP an int), and stricter (lists of str and int only)."""
    if text.translate(None, _DRAWS_PROVEN_BYTES):
        return None  # COPY escapes, raw control characters: the reference decides
    try:
        return orjson.dumps(_DRAWS4.decode(text))
    except (msgspec.DecodeError, msgspec.ValidationError, orjson.JSONEncodeError):
        pass
    try:
        draws = json.loads(text)
    except ValueError:
        return None
    if type(draws) is not list:
        return None
    for draw in draws:
        if type(draw) is not list or len(draw) < 4 or type(draw[3]) is not int:
            return None
        for part in draw:
            if type(part) is not str and type(part) is not int:
                return None
    try:
        return orjson.dumps(draws)
    except orjson.JSONEncodeError:
        return None


def _time(text: bytes) -> bytes | None:
    """`YYYY-MM-DD HH:MM:SS.ffffff` from PostgreSQL's ISO form (fraction trimmed)."""
    n = len(text)
    if n == 26:
        return text
    if n == 19:
        return text + b".000000"
    if 21 <= n < 26 and text[19:20] == b".":
        return text.ljust(26, b"0")
    return None


def fast_canonical(fields: list[bytes]) -> bytes | None:
    """canonical_bytes of one COPY line's fields (COPY_COLUMNS order, the line's
    newline stripped), or None when the row is not proven (see the module doc)."""
    if len(fields) != 20:
        return None
    (seq, _prev, _hash, actor, consignee, country, effective, encoding, kind, line_no,
     operator, path, recorded, reservation, rule_set, version, tpp, idem, note,
     draws) = fields
    if encoding != b"1":
        return None
    strings = [_json_text(text) for text in (actor, consignee, country, kind, operator,
                                              path, reservation, rule_set, version)]
    idem_json = b"null" if idem == _NULL else _json_text(idem)
    note_json = b"null" if note == _NULL else _json_text(note)
    eff = _time(effective)
    rec = _time(recorded)
    draws_canonical = draws_json(draws)
    if None in strings or idem_json is None or note_json is None or eff is None \
            or rec is None or draws_canonical is None:
        return None
    a, c, co, k, o, p, r, rs, v = strings
    return TEMPLATE_QUOTED % (a, c, co, draws_canonical, eff[:10], eff[11:], idem_json, k,
                              line_no, note_json, o, p, rec[:10], rec[11:], r, rs, v, seq,
                              tpp)


# COPY text format's escapes (what PostgreSQL writes for these bytes in a value).
_COPY_ESCAPE = re.compile(rb"\\(.)", re.DOTALL)
_COPY_UNESCAPE = {b"\\": b"\\", b"b": b"\b", b"f": b"\f", b"n": b"\n", b"r": b"\r",
                  b"t": b"\t", b"v": b"\v"}


def _json_text(text: bytes) -> bytes | None:
    """orjson's JSON string (what canonical_bytes writes) of one COPY text field that is
    not NULL; None when it holds an escape COPY never writes."""
    if not _UNPROVEN.search(text):
        return b'"' + text + b'"'
    unknown = False

    def unescape(match: re.Match[bytes]) -> bytes:
        nonlocal unknown
        byte = _COPY_UNESCAPE.get(match.group(1))
        if byte is None:
            unknown = True
            return b""
        return byte

    raw = _COPY_ESCAPE.sub(unescape, text)
    if unknown:
        return None
    try:
        return orjson.dumps(raw.decode())
    except (UnicodeDecodeError, orjson.JSONEncodeError):
        return None


@dataclass(frozen=True)
class WalkResult:
    """One walk of the entries with lo < seq <= hi, in seq order."""

    first_seq: int | None  # None: no entry in the range
    first_prev_hash: str | None
    last_seq: int  # the last entry accepted (lo when none)
    report: ChainReport  # from (first_seq - 1, first_prev_hash); head = last hash


# Column types the template relies on (what PostgreSQL prints, and what SQLAlchemy
# gives the reference): anything else and the walk is the reference's alone.
_INTEGER = ("bigint", "integer", "smallint")
_STRING = ("character varying", "text")
EXPECTED_TYPES = {
    "seq": _INTEGER, "line_no": _INTEGER, "tpp": _INTEGER, "encoding": _INTEGER,
    "effective_at": ("timestamp without time zone",),
    "recorded_at": ("timestamp without time zone",),
    "prev_hash": _STRING, "hash": _STRING, "actor": _STRING, "consignee_id": _STRING,
    "country": _STRING, "kind": _STRING, "operator_id": _STRING, "path": _STRING,
    "reservation_id": _STRING, "rule_set": _STRING, "rule_set_version": _STRING,
    "idempotency_key": _STRING, "note": _STRING, "draws": ("json", "jsonb", "text"),
}


def copy_walk_usable(engine: sa.Engine) -> bool:
    """PostgreSQL, a UTF-8 database, and the entry table's columns of the types the
    template relies on."""
    if engine.dialect.name != "postgresql":
        return False
    with engine.connect() as conn:
        if conn.exec_driver_sql("SHOW server_encoding").scalar() != "UTF8":
            return False
        types: dict[str, str] = {name: kind for name, kind in conn.exec_driver_sql(
            "SELECT column_name, data_type FROM information_schema.columns "
            "WHERE table_name = 'entry' AND table_schema = current_schema()")}
    return all(types.get(name) in allowed for name, allowed in EXPECTED_TYPES.items())


def copy_walk(
    engine: sa.Engine | str, lo: int, hi: int | None, verifier: ChainVerifier | None = None,
    progress: Callable[[int], None] | None = None, batch: int = 5000,
) -> WalkResult:
    """Walks the entries with lo < seq <= hi (hi None: to the end) with `verifier`
    (default: one starting at the first entry's own prev_hash, i.e. trusting only that
    link, for a range checked alongside others and stitched after). `progress(seq)`:
    after every `batch` entries accepted and at the end, as `verify_chain` calls it.
    `engine`: an engine, or its URL (an engine is made only if a row needs the
    reference). Only where `copy_walk_usable` holds. Streams: constant memory."""
    import psycopg

    url = engine if isinstance(engine, str) else engine.url.render_as_string(
        hide_password=False)
    where = f"seq > {int(lo)}" + ("" if hi is None else f" AND seq <= {int(hi)}")
    sql = (f"COPY (SELECT {', '.join(COPY_COLUMNS)} FROM entry "  # noqa: S608 (ints only)
           f"WHERE {where} ORDER BY seq) TO STDOUT")
    walk = _Walk(engine, lo, verifier, progress, batch)
    conn = psycopg.connect(pg_conninfo(url), autocommit=True)
    try:
        conn.execute("SET datestyle TO 'ISO, YMD'")
        conn.execute("SET client_encoding TO 'UTF8'")
        return walk.run(_copy_lines(conn, sql))
    finally:
        walk.close()
        conn.close()  # also ends a COPY left unread when the walk stopped early


def _copy_lines(conn: Any, sql: str) -> Iterator[bytes]:
    """The lines of `COPY ... TO STDOUT` (text), one per entry, straight from libpq:
    psycopg's Copy object costs more per line than the rest of the walk."""
    import psycopg
    from psycopg import pq

    pg = conn.pgconn
    pg.send_query(sql.encode())
    result = pg.get_result()
    if result is None or result.status != pq.ExecStatus.COPY_OUT:
        message = (result.error_message if result is not None else pg.error_message)
        while pg.get_result() is not None:
            pass
        raise psycopg.OperationalError(f"COPY failed: {message.decode(errors='replace')}")
    get = pg.get_copy_data
    while True:
        size, data = get(0)
        if size < 0:
            break
        yield bytes(data)
    if size == -2:
        raise psycopg.OperationalError(
            f"COPY failed: {pg.error_message.decode(errors='replace')}")
    while (result := pg.get_result()) is not None:
        if result.status != pq.ExecStatus.COMMAND_OK:
            raise psycopg.OperationalError(
                f"COPY failed: {result.error_message.decode(errors='replace')}")


class _Walk:
    def __init__(self, engine: sa.Engine | str, lo: int, verifier: ChainVerifier | None,
                 progress: Callable[[int], None] | None, batch: int) -> None:
        self.engine = engine
        self.own_engine: sa.Engine | None = None
        self.lo = lo
        self.verifier = verifier
        self.progress = progress
        self.batch = batch
        self.session: Session | None = None

    def close(self) -> None:
        if self.session is not None:
            self.session.close()
        if self.own_engine is not None:
            self.own_engine.dispose()

    def _reference(self, verifier: ChainVerifier, seq: int) -> bool:
        """The reference verifier's word on the entry at `seq`, read as the plain walk
        reads it."""
        import sqlalchemy as sa
        from sqlalchemy.orm import Session

        from ledger.store.models import Entry

        if self.session is None:
            engine = self.engine
            if isinstance(engine, str):
                from ledger.store.engine import create_ledger_engine

                engine = self.own_engine = create_ledger_engine(engine, pool_size=1)
            self.session = Session(engine)
        entry = Entry.__table__  # type: ignore[attr-defined]
        row = self.session.execute(sa.select(entry).where(entry.c.seq == seq)).one()
        return verifier.feed(row)

    def run(self, lines: Iterator[bytes]) -> WalkResult:
        sha256 = hashlib.sha256
        template = TEMPLATE
        proven_or_quote = _PROVEN_BYTES + b'"'
        rests = (b"\n", b"\\\n", b"\\\\\n")  # newline after 0, 1 or 2 NULLs' backslash
        decode, dumps = _DRAWS4.decode, orjson.dumps
        null = _NULL
        progress, batch = self.progress, self.batch
        verifier = self.verifier
        first_seq: int | None = None
        first_prev: str | None = None
        base = 0
        expected, head, head_raw = 0, b"", b""
        if verifier is not None:
            base = verifier.count
            expected, head = verifier.expected_seq, verifier.head.encode()
            head_raw = bytes.fromhex(verifier.head)
        count = 0  # entries accepted by this walk
        reported = expected - 1
        for line in lines:
            fields = line.split(b"\t")  # the last (draws) ends with the line's newline
            if first_seq is None:
                first_seq, first_prev = int(fields[0]), fields[1].decode()
                if verifier is None:  # a range: trust its first prev_hash, stitch after
                    verifier = ChainVerifier(first_seq - 1, first_prev)
                    expected, head, head_raw = first_seq, fields[1], bytes.fromhex(first_prev)
                    reported = expected - 1
            body = None
            if len(fields) == 20 and fields[1] == head and fields[0] == b"%d" % expected:
                # fast_canonical, inline for the common case.
                (seq, _prev, _stored, actor, consignee, country, eff, encoding, kind,
                 line_no, operator, path, rec, reservation, rule_set, version, tpp, idem,
                 note, draws) = fields
                if len(eff) != 26:
                    eff = _time(eff) or b""
                if len(rec) != 26:
                    rec = _time(rec) or b""
                idem_null, note_null = idem == null, note == null
                # One pass over the line: left after deleting the bytes a proven field
                # may hold (and quotes, checked apart: draws has its own) must be the
                # NULLs' backslashes and the newline; then no quote before draws.
                if line.translate(None, proven_or_quote) == rests[idem_null + note_null] \
                        and line.find(b'"', 0, len(line) - len(draws)) < 0 \
                        and encoding == b"1" and eff and rec:
                    dj: bytes | None
                    try:
                        dj = dumps(decode(draws))  # trailing newline: JSON whitespace
                    except (msgspec.DecodeError, msgspec.ValidationError,
                            orjson.JSONEncodeError):
                        dj = draws_json(draws[:-1])
                    if dj is not None:
                        body = template % (
                            actor, consignee, country, dj, eff[:10], eff[11:],
                            b"null" if idem_null else b'"%s"' % idem, kind, line_no,
                            b"null" if note_null else b'"%s"' % note, operator, path,
                            rec[:10], rec[11:], reservation, rule_set, version, seq, tpp)
                else:  # escapes, quotes: field by field
                    body = fast_canonical(line[:-1].split(b"\t"))
                if body is not None:
                    digest = sha256(head_raw + body).digest()
                    hexed = hexlify(digest)
                    if hexed == fields[2]:
                        head, head_raw = hexed, digest
                        expected += 1
                        count += 1
                        if progress is not None and count % batch == 0:
                            progress(expected - 1)
                            reported = expected - 1
                        continue
            # Not proven, or not right: the reference decides, on the SQLAlchemy row.
            assert verifier is not None
            verifier.expected_seq, verifier.head = expected, head.decode()
            if not self._reference(verifier, int(fields[0])):
                verifier.count = base + count
                return WalkResult(first_seq, first_prev, expected - 1, verifier.report())
            head = verifier.head.encode()
            head_raw = bytes.fromhex(verifier.head)
            expected += 1
            count += 1
            if progress is not None and count % batch == 0:
                progress(expected - 1)
                reported = expected - 1
        if verifier is None:
            return WalkResult(None, None, self.lo, ChainReport(True, 0, "", None))
        verifier.expected_seq, verifier.head = expected, head.decode()
        verifier.count = base + count
        if progress is not None and expected - 1 != reported:
            progress(expected - 1)
        return WalkResult(first_seq, first_prev, expected - 1, verifier.report())


def verify_range(url: str, lo: int, hi: int) -> WalkResult:
    """One worker's walk of seq (lo, hi], trusting only the range's first prev_hash
    (`ledger.audit.verify_chain_parallel` checks the link when it stitches). Imports
    no more than this module needs: a worker starts in a fraction of a second."""
    return copy_walk(url, lo, hi)
