"""The report's charts render with data in a real browser (headless Debian Chromium), on a
desktop screen and on a phone."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from django.test import Client

from tests.browser import BROWSER_MARKS
from tests.tracking.test_reports import _traffic, campaign  # noqa: F401  (fixture)

pytestmark = BROWSER_MARKS


@pytest.mark.django_db(transaction=True)
def test_report_charts_render_with_data(live_server, campaign, user, browser, tmp_path):  # noqa: F811
    _traffic(Client(), campaign)
    session = Client()
    session.force_login(user)
    cookie = {
        "name": "sessionid",
        "value": session.cookies["sessionid"].value,
        "url": live_server.url,
    }
    shots = Path(os.environ.get("MAILCENTER_SCREENSHOTS", tmp_path))
    for name, viewport in [("desktop", (1280, 900)), ("phone", (390, 844))]:
        context = browser.new_context(viewport={"width": viewport[0], "height": viewport[1]})
        context.add_cookies([cookie])
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda exc, errors=errors: errors.append(str(exc)))
        page.goto(f"{live_server.url}/reports/{campaign.pk}/")
        for chart in ("funnel", "timeline", "clients"):
            canvas = page.locator(f'canvas[data-chart="{chart}"][data-rendered]')
            canvas.wait_for(timeout=20_000)
            assert int(canvas.get_attribute("data-rendered")) > 0, chart
            box = canvas.bounding_box()
            assert box["width"] > 200 and box["height"] > 150, (chart, box)
            assert box["x"] + box["width"] <= viewport[0] + 1, "wider than the screen"
            # Chart.js drew something: the canvas is not blank
            painted = page.evaluate(
                """(c) => { const d = c.getContext('2d')
                      .getImageData(0, 0, c.width, c.height).data;
                    for (let i = 3; i < d.length; i += 4) { if (d[i]) return true; }
                    return false; }""",
                canvas.element_handle(),
            )
            assert painted, chart
        page.screenshot(path=str(shots / f"report-{name}.png"), full_page=True)
        page.goto(f"{live_server.url}/reports/")
        trends = page.locator('canvas[data-chart="trends"][data-rendered]')
        trends.wait_for(timeout=20_000)
        # the recipients list: its tabs and page links wrap on a phone instead of widening
        # the page
        page.goto(f"{live_server.url}/reports/{campaign.pk}/recipients/?what=not_opened")
        page.get_by_role("link", name="Not opened").wait_for()
        width = page.evaluate("document.documentElement.scrollWidth")
        assert width <= viewport[0] + 1, ("recipients page wider than the screen", width)
        page.screenshot(path=str(shots / f"recipients-{name}.png"), full_page=True)
        assert not errors, errors
        context.close()
