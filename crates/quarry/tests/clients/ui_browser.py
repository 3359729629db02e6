"""The /ui page in headless Chromium (Debian's), driven by Playwright.

Enters the key when asked, searches, builds a context, opens the sources
and stats tabs, and collects every console error and page error. Saves a
screenshot to $SCREENSHOT. Prints one JSON summary last.
"""

import json
import os

from playwright.sync_api import expect, sync_playwright

URL = os.environ["QUARRY_URL"]
QUERY = "liveness and readiness probes for the load balancer"
report = {"console_errors": []}

with sync_playwright() as p:
    browser = p.chromium.launch(
        executable_path="/usr/bin/chromium",
        headless=True,
        args=[
            "--no-sandbox",
            "--disable-gpu",
            "--disable-quic",
            "--no-first-run",
            "--disable-background-networking",
            "--disable-component-update",
            "--disable-sync",
        ],
    )
    page = browser.new_page(viewport={"width": 1200, "height": 900})
    page.on("console", lambda m: m.type == "error" and report["console_errors"].append(m.text))
    page.on("pageerror", lambda e: report["console_errors"].append(str(e)))
    page.goto(f"{URL}/ui")

    # Keys are on: the page asks for one before calling the API.
    page.wait_for_selector("#key-panel:not([hidden])")
    page.fill("#key", os.environ["READER_KEY"])
    page.click("#key-form button[type=submit]")
    page.wait_for_selector("#search-collection option[value=guide]", state="attached")
    assert page.evaluate("sessionStorage.getItem('quarry.key')") == os.environ["READER_KEY"]
    assert page.evaluate("localStorage.length") == 0

    page.fill("#search-query", QUERY)
    page.select_option("#search-mode", "hybrid")
    page.click("#search-form button[type=submit]")
    page.wait_for_selector("#search-results li.hit")
    report["first_hit"] = page.inner_text("#search-results li.hit .title")
    report["hits"] = page.locator("#search-results li.hit").count()
    assert "score" in page.inner_text("#search-results li.hit .meta")
    assert page.inner_text("#search-results li.hit .snippet").strip()
    # The guide's URIs are file:// ones: shown, not linked from a web page.
    assert "file://" in page.inner_text("#search-results li.hit .meta")
    assert "hits in" in page.inner_text("#search-summary")
    page.screenshot(path=os.environ["SCREENSHOT"].replace(".png", "-search.png"), full_page=True)

    # A path filter that matches nothing shows no hits.
    page.click("details summary")
    page.fill("#filter-path", "no-such-folder/")
    page.click("#search-form button[type=submit]")
    # (expect, not wait_for_function: the page's CSP forbids eval.)
    expect(page.locator("#search-results li.hit")).to_have_count(0)
    assert "0 hits" in page.inner_text("#search-summary")
    page.fill("#filter-path", "")

    page.click("nav button[data-tab=context]")
    page.fill("#context-query", QUERY)
    page.fill("#context-tokens", "300")
    page.click("#context-form button[type=submit]")
    page.wait_for_selector("#context-citations li.citation")
    summary = page.inner_text("#context-summary")
    assert "/ 300 tokens" in summary, summary
    assert "[1]" in page.inner_text("#context-text")
    report["context_citations"] = page.locator("#context-citations li.citation").count()
    report["context_summary"] = summary
    page.screenshot(path=os.environ["SCREENSHOT"], full_page=True)

    page.click("nav button[data-tab=sources]")
    page.wait_for_selector("#sources-table tbody tr")
    report["sources_rows"] = page.locator("#sources-table tbody tr").count()
    assert "guide" in page.inner_text("#sources-table tbody")

    page.click("nav button[data-tab=stats]")
    page.wait_for_selector("#stats-table tbody tr")
    report["stats"] = page.inner_text("#stats-summary")
    assert "queries" in report["stats"], report["stats"]

    browser.close()

print(json.dumps(report))
