"""The report pages in a real browser under the app's strict CSP: the charts (server-drawn SVG as <img>) render,
the heat map is a shaded table, and the page reports no CSP violation."""

from __future__ import annotations

from typing import Any

from crm_inbox.erp.overdue import today
from tests.analytics_stores import build
from tests.browser.conftest import log_in, screenshot
from tests.test_analytics_pages import report_world

# Installed before any page script: collects what the browser's CSP refused (scripts, styles, images).
WATCH_CSP = """
window.__cspViolations = [];
document.addEventListener("securitypolicyviolation",
    e => window.__cspViolations.push(e.violatedDirective + " " + e.blockedURI));
"""


def test_report_charts_render_under_the_strict_csp(page: Any, live: Any, staff_login: tuple[str, str]) -> None:
    settings = live.settings
    store = settings.analytics.store_path(settings.service.instance_dir)
    store.parent.mkdir(parents=True, exist_ok=True)
    build(store, report_world(today(settings)))
    console: list[str] = []
    page.on("console", lambda message: console.append(message.text))
    page.add_init_script(WATCH_CSP)
    log_in(page, *staff_login)
    page.get_by_role("link", name="Reports").first.click()
    page.get_by_role("link", name="Service").first.click()
    page.wait_for_load_state("networkidle")
    charts = page.eval_on_selector_all(
        "img.chart", "images => images.map(i => [i.getAttribute('src'), i.complete, i.naturalWidth])")
    assert len(charts) >= 5
    assert all(complete and width > 0 for _, complete, width in charts), charts
    assert page.evaluate("window.__cspViolations") == []
    screenshot(page, "reports-service")

    page.get_by_role("link", name="Phone").first.click()
    page.wait_for_load_state("networkidle")
    assert page.locator("#calls_heatmap table.heatmap td.heat-5").count() >= 1
    shade = page.locator("#calls_heatmap td.heat-5").first.evaluate("c => getComputedStyle(c).backgroundColor")
    assert shade == "rgb(11, 92, 173)"  # the stylesheet's class shades it: no inline style needed
    assert page.evaluate("window.__cspViolations") == []
    assert not [m for m in console if "Content Security Policy" in m], console
    screenshot(page, "reports-phone")
