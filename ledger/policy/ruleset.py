"""Loading rule sets: read a file, validate it, check its references, merge the chip catalog.

A rule set is data (TOML, see `rulesets/` and the language in `schema` and
`schema_rules`). Every error is a RuleSetError "<file>: <key path>: <why>",
e.g. "custom.toml: steps[2].when.destination_in: unknown group 'tier4' (known: ...)".
"""

from __future__ import annotations

import tomllib
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, TypeVar

from pydantic import BaseModel, ValidationError

from ledger.policy.catalog import Chip, merged
from ledger.policy.model import RuleSet, UnknownCountryError, utc_date
from ledger.policy.schema import CatalogFile, ChipSpec, RuleSetFile
from ledger.policy.schema_rules import Condition, EquivalentsUnit

__all__ = [
    "Chip",
    "RuleSet",
    "RuleSetError",
    "UnknownCountryError",
    "builtin_rule_sets",
    "load_rule_set",
    "parse_rule_set",
    "utc_date",
]

_BUILTIN_PACKAGE = "ledger.policy"
_BUILTIN_FOLDER = "rulesets"
_CATALOG = "chips.toml"
M = TypeVar("M", bound=BaseModel)


class RuleSetError(ValueError):
    """A rule-set file could not be read or is invalid; the message is "<file>: <field>: <why>"."""


# Loading ----------------------------------------------------------------------
def builtin_rule_sets() -> list[str]:
    """Names of the rule sets shipped with the ledger, sorted."""
    folder = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_FOLDER)
    return sorted(
        item.name.removesuffix(".toml") for item in folder.iterdir() if item.name.endswith(".toml")
    )


def load_rule_set(name_or_path: str) -> RuleSet:
    """Load a built-in rule set by name, or a user's rule-set file by path.

    A value ending in ".toml" or containing a path separator is a path.
    Raises RuleSetError("<file>: <field>: <why>") for anything wrong.
    """
    if name_or_path.endswith(".toml") or "/" in name_or_path or "\\" in name_or_path:
        path = Path(name_or_path)
        try:
            raw = path.read_bytes()
        except OSError as exc:
            raise RuleSetError(f"{path}: (file): cannot read: {exc.strerror or exc}") from exc
        return parse_rule_set(raw, str(path))
    return _load_builtin(name_or_path)


@cache
def _load_builtin(name: str) -> RuleSet:
    # Built-in files never change while the process runs, so one parse is enough.
    if name not in builtin_rule_sets():
        known = ", ".join(builtin_rule_sets())
        raise RuleSetError(f"{name}: name: not a built-in rule set (known: {known})")
    item = resources.files(_BUILTIN_PACKAGE).joinpath(_BUILTIN_FOLDER).joinpath(f"{name}.toml")
    rule_set = parse_rule_set(item.read_bytes(), f"{_BUILTIN_FOLDER}/{name}.toml")
    if rule_set.name != name:
        raise RuleSetError(f"{rule_set.source}: name: {rule_set.name!r} differs from file name")
    return rule_set


@cache
def shared_catalog() -> tuple[ChipSpec, ...]:
    """The chip catalog every rule set starts from (chips.toml)."""
    raw = resources.files(_BUILTIN_PACKAGE).joinpath(_CATALOG).read_bytes()
    return _validate(CatalogFile, raw, _CATALOG).chips


def parse_rule_set(raw: bytes, source: str) -> RuleSet:
    """Validate the bytes of a rule-set file; `source` names it in error messages."""
    spec = _validate(RuleSetFile, raw, source)
    chips = merged(shared_catalog(), spec.chips)
    problem = check_references(spec, {c.id for c in chips})
    if problem is not None:
        raise RuleSetError(f"{source}: {problem}")
    return RuleSet(spec, source, chips)


def _validate(model: type[M], raw: bytes, source: str) -> M:
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        raise RuleSetError(f"{source}: (toml): {exc}") from exc
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise RuleSetError(_describe(source, exc)) from exc


def _describe(source: str, exc: ValidationError) -> str:
    errors = exc.errors()
    first = errors[0]
    field = "".join(
        f"[{part}]" if isinstance(part, int) else f".{part}" for part in first["loc"]
    ).lstrip(".")
    message = str(first["msg"]).removeprefix("Value error, ")
    more = f" (and {len(errors) - 1} more)" if len(errors) > 1 else ""
    return f"{source}: {field or '(file)'}: {message}{more}"


# References between sections ----------------------------------------------------
def _unknown(kind: str, name: str, known: Any) -> str:
    return f"unknown {kind} {name!r} (known: {', '.join(sorted(known)) or 'none'})"


def _condition_problem(path: str, cond: Condition, spec: RuleSetFile) -> str | None:
    groups = spec.groups
    for key in ("destination_in", "destination_not_in", "party_hq_in", "parties_hq_all_in"):
        for name in getattr(cond, key):
            if name not in groups:
                return f"{path}.{key}: {_unknown('group', name, groups)}"
    if cond.authorised is not None and cond.authorised not in spec.entities:
        return f"{path}.authorised: {_unknown('entity', cond.authorised, spec.entities)}"
    return None


def check_references(spec: RuleSetFile, chip_ids: set[str]) -> str | None:
    """"<key path>: <why>" for the first name that refers to nothing, or None.

    Also: the last step must decide every line that reaches it (no conditions, and
    not an `allowed` step whose quotas could fall through), and quota kinds are unique
    (a stored bucket's kind names its quota).
    """
    for name, group in spec.groups.items():
        for i, other in enumerate(group.complement_of):
            if other not in spec.groups or spec.groups[other].complement_of:
                return (f"groups.{name}.complement_of[{i}]: "
                        f"{_unknown('listed group', other, spec.groups)}")
    kinds: dict[str, str] = {}
    for name, quota in spec.quotas.items():
        path = f"quotas.{name}"
        if quota.kind in kinds:
            return f"{path}.kind: {quota.kind!r} is also the kind of quota {kinds[quota.kind]!r}"
        kinds[quota.kind] = name
        if isinstance(quota.unit, EquivalentsUnit) and quota.unit.equivalents_of not in chip_ids:
            return (f"{path}.unit.equivalents_of: "
                    f"{_unknown('chip', quota.unit.equivalents_of, chip_ids)}")
        for multiplied in quota.multipliers:
            if multiplied not in spec.groups:
                return f"{path}.multipliers: {_unknown('group', multiplied, spec.groups)}"
        entities = [quota.entity] if quota.entity else []
        for i, sub in enumerate(quota.sub_quotas):
            if sub.entity not in spec.entities:
                return f"{path}.sub_quotas[{i}].entity: " + _unknown(
                    "entity", sub.entity, spec.entities)
        for entity in entities:
            if entity not in spec.entities:
                return f"{path}.entity: {_unknown('entity', entity, spec.entities)}"
        problem = _condition_problem(f"{path}.applies_when", quota.applies_when, spec)
        if problem:
            return problem
    if spec.uveu is not None and spec.uveu.headquarters_in not in spec.groups:
        return f"uveu.headquarters_in: {_unknown('group', spec.uveu.headquarters_in, spec.groups)}"
    for attr in ("tier1", "tier3"):
        tier_group: str | None = getattr(spec.tiers, attr)
        if tier_group is not None and tier_group not in spec.groups:
            return f"tiers.{attr}: {_unknown('group', tier_group, spec.groups)}"
    seen: set[str] = set()
    for i, step in enumerate(spec.steps):
        path = f"steps[{i}]"
        if step.id in seen:
            return f"{path}.id: {step.id!r} is used by an earlier step"
        seen.add(step.id)
        for j, cond in enumerate((step.when, *step.any_of)):
            where = f"{path}.when" if j == 0 else f"{path}.any_of[{j - 1}]"
            problem = _condition_problem(where, cond, spec)
            if problem:
                return problem
        for k, quota_name in enumerate(step.quotas):
            if quota_name not in spec.quotas:
                return f"{path}.quotas[{k}]: {_unknown('quota', quota_name, spec.quotas)}"
        if step.ratios == "uveu" and spec.uveu is None:
            return f"{path}.ratios: the rule set has no [uveu] section"
    if spec.steps:
        last = spec.steps[-1]
        if not last.unconditional or (last.outcome == "allowed" and last.quotas):
            return (f"steps[{len(spec.steps) - 1}]: the last step must decide every line: "
                    "no conditions, and no quotas to fall through from")
    else:
        return "steps: at least one step is needed"
    return None
