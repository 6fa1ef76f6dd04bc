"""The dashboard in a real browser against a real server: sign in and out, roles, headroom
bars, a denial's reasons, the chain check. Every figure checked is the API's, as shown."""

from __future__ import annotations

import re
from typing import Any

import pytest

from tests.browser.conftest import COUNTRY, OPERATOR_ID, LiveServer

pytestmark = pytest.mark.browser
KEY_SLOT = "tpp-ledger.api-key"
H100_X1000 = 15_832_000  # 1,000 x H100-SXM at 15,832 TPP


def expect(target: Any) -> Any:
    from playwright.sync_api import expect as playwright_expect

    return playwright_expect(target)


def sign_in(page: Any, key: str) -> None:
    page.fill("#api-key", key)
    page.click("#sign-in-form button[type=submit]")


def signed_in_as(page: Any, server: LiveServer, role: str) -> None:
    sign_in(page, server.keys[role])
    expect(page.locator("#who-role")).to_contain_text(role)


def tabs(page: Any) -> list[str]:
    return [t.strip() for t in page.locator("#tabs [role=tab]").all_inner_texts()]


def test_key_stays_in_the_session_and_sign_out_forgets_it(page: Any, live_server: LiveServer):
    key = live_server.keys["admin"]
    signed_in_as(page, live_server, "admin")
    assert tabs(page) == ["Headroom", "Use over time", "Reservations", "History",
                          "Findings and alerts", "Policy"]
    assert page.evaluate(f"sessionStorage.getItem('{KEY_SLOT}')") == key
    assert page.evaluate("localStorage.length") == 0
    assert page.context.cookies() == []
    assert key not in page.url
    # Policy in force, with provenance of each number.
    page.click("#tab-policy")
    quotas = page.locator("#panel-policy table").first
    expect(quotas).to_contain_text("26,900,000")
    expect(quotas).to_contain_text("15 CFR 740.29")
    page.click("#sign-out")
    expect(page.locator("#sign-in-form")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{KEY_SLOT}')") is None


def test_an_unknown_key_is_refused_and_a_revoked_one_sends_back_to_sign_in(
    page: Any, live_server: LiveServer
):
    sign_in(page, "not-a-key")
    expect(page.locator("#sign-in-message")).to_contain_text("401")
    expect(page.locator("#app")).to_be_hidden()

    key = live_server.create_key("auditor", "browser-to-revoke")
    sign_in(page, key)
    expect(page.locator("#who-role")).to_contain_text("auditor")
    with live_server.client("admin") as admin:
        items = admin.get("/v1/keys", params={"limit": 200}).json()["items"]
        key_id = next(k["id"] for k in items if k["name"] == "browser-to-revoke")
        assert admin.delete(f"/v1/keys/{key_id}").status_code == 204
    page.click("#tab-history")
    page.click("#verify-chain")
    expect(page.locator("#sign-in-message")).to_contain_text("401")
    expect(page.locator("#sign-in-form")).to_be_visible()
    assert page.evaluate(f"sessionStorage.getItem('{KEY_SLOT}')") is None


def test_a_headroom_bar_moves_after_a_reservation(page: Any, live_server: LiveServer):
    signed_in_as(page, live_server, "admin")
    panel = page.locator("#panel-headroom")
    panel.locator("input[name=country]").fill(COUNTRY)
    panel.locator("input[name=operator_id]").fill(OPERATOR_ID)
    panel.locator("input[name=consignee_id]").fill("c-headroom")
    panel.locator("button[type=submit]").click()
    bucket = panel.locator('[data-bucket="lpp:consignee:c-headroom"]')
    expect(bucket.locator(".v-held")).to_have_text("0")
    expect(bucket.locator(".v-available")).to_have_text("26,900,000")
    assert bucket.locator(".mark").count() == 2  # 80 % and 95 %
    width_before = bucket.locator(".seg.held").evaluate("e => e.getBoundingClientRect().width")

    with live_server.client("vendor") as vendor:
        made = vendor.post("/v1/reservations", headers={"Idempotency-Key": "browser-bar-1"},
                           json={"lines": [{"destination_country": COUNTRY,
                                            "operator_id": OPERATOR_ID,
                                            "consignee_id": "c-headroom",
                                            "chip": "H100-SXM", "quantity": 1000}]})
        assert made.status_code == 201, made.text
    panel.locator("button[type=submit]").click()
    expect(bucket.locator(".v-held")).to_have_text("15,832,000")
    expect(bucket.locator(".v-available")).to_have_text("11,068,000")
    expect(bucket.locator(".v-cap")).to_have_text("26,900,000")
    width_after = bucket.locator(".seg.held").evaluate("e => e.getBoundingClientRect().width")
    assert width_before == 0 < width_after
    bar_label = bucket.locator(".bar").get_attribute("aria-label")
    assert "held 15,832,000" in bar_label


def test_a_denied_reservation_shows_each_violation_with_its_reason(
    page: Any, live_server: LiveServer
):
    signed_in_as(page, live_server, "vendor")
    assert tabs(page) == ["Headroom", "Reservations", "Policy"]  # a vendor reads no history
    page.click("#tab-reservations")
    form = page.locator("form.reserve")
    form.locator("input[name=destination_country]").fill(COUNTRY)
    form.locator("input[name=operator_id]").fill(OPERATOR_ID)
    form.locator("input[name=consignee_id]").fill("c-denial")
    form.locator("input[name=chip]").fill("H100-SXM")
    form.locator("input[name=quantity]").fill("1000")
    decision = page.locator("#panel-reservations .decision")

    form.locator("button[value=reserve]").click()
    expect(decision).to_contain_text("Held res_")
    expect(decision).to_contain_text("path lpp")
    listed = page.locator("#panel-reservations table.reservations")
    expect(listed).to_contain_text("c-denial")

    form.locator("button[value=reserve]").click()  # the same again: over the LPP cap
    expect(decision).to_contain_text("Denied")
    rows = decision.locator("table.violations tr.violation")
    lpp = rows.filter(has=page.locator("code.constraint", has_text=re.compile("^lpp$")))
    expect(lpp).to_have_count(1)
    expect(lpp.locator("code.rule")).to_have_text("lpp")
    expect(lpp.locator(".reason")).to_contain_text("low-processing-performance exemption")
    expect(lpp.locator(".reason")).to_contain_text("11,068,000 TPP left of 26,900,000")
    expect(lpp).to_contain_text(f"{H100_X1000:,}")


def test_history_shows_hashes_and_verify_says_ok(page: Any, live_server: LiveServer):
    with live_server.client("vendor") as vendor:
        made = vendor.post("/v1/reservations", headers={"Idempotency-Key": "browser-history-1"},
                           json={"lines": [{"destination_country": COUNTRY,
                                            "operator_id": OPERATOR_ID,
                                            "consignee_id": "c-list", "tpp": 1000}]})
        assert made.status_code == 201, made.text
    signed_in_as(page, live_server, "auditor")
    page.click("#tab-history")
    first = page.locator("#panel-history table.entries tbody tr").first
    expect(first.locator("td").first).to_have_text("1")
    assert re.fullmatch("0{64}", first.locator("code.hash").nth(1).get_attribute("title"))
    page.click("#verify-chain")
    verdict = page.locator("#verify-result .message")
    expect(verdict).to_have_attribute("data-ok", "true")
    expect(verdict).to_contain_text("Chain ok")
    # An auditor checks a reservation but cannot make one.
    page.click("#tab-reservations")
    expect(page.locator("form.reserve button[value=evaluate]")).to_be_visible()
    expect(page.locator("form.reserve button[value=reserve]")).to_have_count(0)


def test_an_operator_sees_its_own_operator_and_no_reservations(
    page: Any, live_server: LiveServer
):
    signed_in_as(page, live_server, "operator")
    expect(page.locator("#who-role")).to_contain_text(OPERATOR_ID)
    assert tabs(page) == ["Headroom", "Use over time", "History", "Policy"]
    page.click("#tab-usage")
    panel = page.locator("#panel-usage")
    panel.locator("input[name=country]").fill(COUNTRY)
    panel.locator("button", has_text="Find buckets").click()
    expect(panel.locator("#usage-bucket option", has_text="c-headroom")).to_have_count(1)
    label = panel.locator("#usage-bucket option", has_text="c-headroom").inner_text()
    panel.locator("#usage-bucket").select_option(label=label)
    panel.locator("input[name=n]").fill("6")
    panel.locator("button", has_text="Draw").click()
    expect(panel.locator(".chart svg")).to_be_visible()
    expect(panel.locator("figcaption")).to_contain_text("held 15,832,000")
