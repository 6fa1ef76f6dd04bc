"""Building blocks shared by the rule-set file models: strict models, provenance, dates."""

from __future__ import annotations

import re
from datetime import date
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from ledger.countries import is_known_country

Status = Literal["firm", "likely", "reported", "draft", "suspended"]
"""How sure a number or list is: firm (regulatory text), likely (reputable secondary
sources), reported (one weak source), draft (proposed, not in force), suspended."""

CHIP_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_NAME = re.compile(r"^[a-z0-9][a-z0-9_-]*$")


class Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True, strict=False, populate_by_name=True)


def check_country(code: str) -> str:
    if not is_known_country(code):
        raise ValueError(f"unknown country code {code!r} (ISO 3166-1 alpha-2, upper case)")
    return code


def check_name(value: str) -> str:
    if not _NAME.match(value):
        raise ValueError(f"{value!r} is not a name (lower-case letters, digits, '_', '-')")
    return value


class Provenance(Model):
    """Where a number or list comes from, and how sure it is."""

    source: str = Field(min_length=1)
    date: date
    status: Status
    note: str = ""


class Dated(Model):
    """Valid from `from` (inclusive) until `until` (exclusive); either may be open."""

    from_: date | None = Field(default=None, alias="from")
    until: date | None = None

    @model_validator(mode="after")
    def _dates(self) -> Dated:
        if self.from_ is not None and self.until is not None and self.until <= self.from_:
            raise ValueError("until must be after from")
        return self

    def covers(self, on: date) -> bool:
        return (self.from_ is None or self.from_ <= on) and (self.until is None or on < self.until)


