"""Normalised forms of names and addresses: the keys screening looks parties up by.

Pure functions, no I/O. Two spellings of one company or one address should give
the same string; the rules are few and written down here so that a match can be
explained:

- Unicode compatibility form (NFKD) with combining marks dropped, so accents and
  diacritics do not matter ("Société" = "Societe"); a few letters NFKD keeps
  are spelled out (ß → ss, æ → ae, ø → o, ł → l, đ → d, þ → th, œ → oe).
- Case folded; "&" reads "and"; every other run of punctuation or spacing is one
  space (so "Co.,Ltd." and "Co Ltd" agree, and "A.B.C." = "A B C").
- Runs of single letters are one word ("H.P.C." = "HPC", "L.L.C." = "LLC").
- Names: legal-form words are dropped wherever they stand after the first word
  (Co., Ltd., Inc., LLC, GmbH, Corp., Limited, S.A., AG, PLC, Pte, Sdn Bhd, ...); a few
  transliteration equivalences are applied word by word (see `NAME_WORDS`).
- Addresses: common abbreviations are spelled out (Rd → road, St → street,
  Bldg → building, No. → number, Fl → floor, ...).

The first word is never dropped (it is the name's own, as in "SA Holdings"), so
no name normalises to nothing but an empty one.
"""

from __future__ import annotations

import re
import unicodedata
from typing import Final

# Letters NFKD does not decompose into ASCII.
_SPELLED: Final = str.maketrans({
    "ß": "ss", "æ": "ae", "Æ": "AE", "ø": "o", "Ø": "O", "ł": "l", "Ł": "L",
    "đ": "d", "Đ": "D", "þ": "th", "Þ": "TH", "œ": "oe", "Œ": "OE", "\u0131": "i",
})
_NON_WORD: Final = re.compile(r"[^0-9a-z]+")

# Legal-form words and abbreviations, after folding and splitting into words.
# Dotted forms ("S.A.", "Pte.", "Co.,") split into these words too.
LEGAL_FORM_WORDS: Final = frozenset({
    "co", "company", "companies", "corp", "corporation", "inc", "incorporated",
    "ltd", "limited", "llc", "llp", "lp", "plc", "pte", "pty", "gmbh", "mbh", "ag",
    "kg", "kgaa", "se", "sa", "sas", "sarl", "srl", "spa", "bv", "nv", "oy", "oyj",
    "ab", "as", "asa", "aps", "kk", "kabushiki", "kaisha", "sdn", "bhd", "berhad",
    "jsc", "pjsc", "ojsc", "cjsc", "ooo", "zao", "oao", "pao", "tbk", "pt",
    "fze", "fzco", "fzc", "fz", "dmcc", "wll",
    "youxian", "gongsi", "yugen", "zrt", "kft", "sp", "zoo", "doo",
})
# Multi-word legal forms whose single words are not legal forms on their own
# elsewhere ("S. de R.L.", "Co., Ltd." are covered word by word above).
_LEGAL_PHRASES: Final = (
    ("s", "a"), ("s", "a", "s"), ("s", "r", "l"), ("s", "p", "a"), ("b", "v"), ("n", "v"),
    ("s", "de", "r", "l"), ("s", "a", "de", "c", "v"), ("de", "c", "v"), ("a", "s"),
    ("o", "o", "o"),
    ("sp", "z", "o", "o"), ("d", "o", "o"), ("k", "k"),
)

_PHRASES_BY_FIRST: Final = {
    first: tuple(sorted((p for p in _LEGAL_PHRASES if p[0] == first), key=len, reverse=True))
    for first in {p[0] for p in _LEGAL_PHRASES}
}

# Transliteration and spelling equivalences, word by word: the left spelling
# becomes the right one. Kept small and documented in docs/screening.md.
NAME_WORDS: Final = {
    "and": "and", "und": "and", "et": "and", "y": "and",
    "intl": "international", "int": "international", "internat": "international",
    "tech": "technology", "technologies": "technology", "techs": "technology",
    "technol": "technology",
    "svcs": "services", "service": "services", "svc": "services",
    "mfg": "manufacturing", "ind": "industries", "industry": "industries",
    "electronic": "electronics", "elec": "electronics",
    "sci": "science", "sciences": "science",
    "sys": "systems", "system": "systems",
    "assoc": "associates",
    "bros": "brothers",
    "ctr": "center", "centre": "center",
    "dept": "department",
    "natl": "national",
    "univ": "university",
    # Common romanisation variants.
    "peking": "beijing", "canton": "guangzhou", "tientsin": "tianjin",
    "sinkiang": "xinjiang", "tsinghua": "qinghua",
    "mohammad": "muhammad", "mohammed": "muhammad", "mohamed": "muhammad",
    "muhammed": "muhammad",
}

# Address abbreviations, word by word.
ADDRESS_WORDS: Final = {
    "rd": "road", "st": "street", "str": "street", "ave": "avenue", "av": "avenue",
    "blvd": "boulevard", "bldg": "building", "bld": "building", "no": "number",
    "nr": "number", "num": "number", "fl": "floor", "flr": "floor", "fir": "floor",
    "ste": "suite", "rm": "room", "dist": "district", "distr": "district",
    "hwy": "highway", "ln": "lane", "dr": "drive", "ct": "court", "sq": "square",
    "pk": "park", "ind": "industrial", "indus": "industrial", "tech": "technology",
    "sci": "science", "hi": "high", "zn": "zone", "apt": "apartment", "blk": "block",
    "twr": "tower", "ctr": "center", "centre": "center", "pl": "place", "mt": "mount",
    "n": "north", "s": "south", "e": "east", "w": "west", "prov": "province",
    "po": "po", "box": "box", "pob": "po box",
    "peking": "beijing", "canton": "guangzhou", "tientsin": "tianjin",
}
# Ordinals: "1st" / "first" → "1" for floors, streets.
_ORDINAL: Final = re.compile(r"^(\d+)(st|nd|rd|th)$")
_ORDINAL_WORDS: Final = {
    "first": "1", "second": "2", "third": "3", "fourth": "4", "fifth": "5",
    "sixth": "6", "seventh": "7", "eighth": "8", "ninth": "9", "tenth": "10",
}


def fold(s: str) -> str:
    """Accents and diacritics stripped (NFKD), a few letters spelled out, case folded."""
    if s.isascii():
        return s.lower()
    s = s.translate(_SPELLED)
    decomposed = unicodedata.normalize("NFKD", s)
    return "".join(c for c in decomposed if not unicodedata.combining(c)).casefold()


def words(s: str) -> list[str]:
    """The folded words of `s`: "&" reads "and", any punctuation or spacing separates."""
    folded = fold(s).replace("&", " and ").replace("'", "").replace("\u2019", "")
    return [w for w in _NON_WORD.split(folded) if w]


def _drop_phrases(ws: list[str]) -> list[str]:
    out: list[str] = []
    i = 0
    while i < len(ws):
        for phrase in _PHRASES_BY_FIRST.get(ws[i], ()):
            n = len(phrase)
            # A spelled-out legal form ("S.A.", "B.V.") is dropped only at the end or
            # before another legal form: initials at the start of a name stay.
            if tuple(ws[i:i + n]) == phrase and (i + n == len(ws) or ws[i + n] in LEGAL_FORM_WORDS
                                                 or _is_legal_phrase_at(ws, i + n)):
                i += n
                break
        else:
            out.append(ws[i])
            i += 1
    return out


def join_initials(ws: list[str]) -> list[str]:
    """Runs of single letters become one word: "H.P.C." = "H P C" = "HPC", "L.L.C." = "LLC"."""
    out: list[str] = []
    run = ""
    for w in ws:
        if len(w) == 1 and w.isalpha():
            run += w
            continue
        if run:
            out.append(run)
            run = ""
        out.append(w)
    if run:
        out.append(run)
    return out


def _is_legal_phrase_at(ws: list[str], i: int) -> bool:
    return i < len(ws) and any(tuple(ws[i:i + len(p)]) == p
                               for p in _PHRASES_BY_FIRST.get(ws[i], ()))


def normalise_name(s: str) -> str:
    """The name's key: folded words, legal-form words dropped, equivalences applied.

    >>> normalise_name("Zhongguo Example Tech. Co., Ltd.")
    'zhongguo example technology'
    >>> normalise_name("ÉXAMPLE  Systems GmbH") == normalise_name("example system")
    True
    """
    ws = words(s)
    if not ws:
        return ""
    joined = join_initials(_drop_phrases(ws))
    # The first word is the name's own, even when it spells a legal form ("SA Holdings").
    kept = joined[:1] + [w for w in joined[1:] if w not in LEGAL_FORM_WORDS]
    return " ".join(NAME_WORDS.get(w, w) for w in kept)


def _address_word(w: str) -> str:
    m = _ORDINAL.match(w)
    if m:
        return m.group(1)
    return _ORDINAL_WORDS.get(w, ADDRESS_WORDS.get(w, w))


def normalise_address(s: str) -> str:
    """The address's key: folded words, abbreviations spelled out, ordinals as numbers.

    >>> normalise_address("No. 8, Example Rd., Bldg 3, 5th Fl.")
    'number 8 example road building 3 5 floor'
    """
    return " ".join(_address_word(w) for w in words(s))


def normalise_person(s: str) -> str:
    """An officer's name: folded words in order (no legal forms, no abbreviations),
    initials joined ("J. R. Doe" = "JR Doe"). Romanisation equivalences of `NAME_WORDS`
    apply (Mohammed = Muhammad)."""
    return " ".join(NAME_WORDS.get(w, w) for w in join_initials(words(s)))
