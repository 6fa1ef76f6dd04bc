"""ISO 3166-1 alpha-2 country codes, as `pycountry` lists them.

Only the officially assigned codes count: user-assigned codes such as "XK"
(Kosovo) are not in pycountry's list and are therefore unknown here.
"""

from __future__ import annotations

from functools import lru_cache

import pycountry


@lru_cache(maxsize=1)
def _known_codes() -> frozenset[str]:
    return frozenset(country.alpha_2 for country in pycountry.countries)


def is_known_country(code: object) -> bool:
    """True exactly when `code` is an upper-case ISO 3166-1 alpha-2 code pycountry knows.

    Lower-case or padded input is not accepted: the API and the rule-set files
    spell codes upper-case, and silently normalising would let two spellings
    of one country name two different buckets.
    """
    return isinstance(code, str) and code in _known_codes()


def known_countries() -> frozenset[str]:
    """Every known alpha-2 code (the universe Tier 2 is "every other country" of)."""
    return _known_codes()
