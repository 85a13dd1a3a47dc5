"""The console in a real browser: Debian's Chromium driven by Playwright 1.64.1, against a live server
with workers, offline (no `playwright install`: the pinned driver expects the Chromium major Debian
ships). Skipped, saying why, when Chromium is missing or its major differs from the driver's.

One journey, as a user would take it: sign in; import contacts from a CSV with one bad row (reported
by row); make a carousel campaign to a CSV of numbers, its live preview matching the content; watch it
reach done by polling; find one of its messages and read its timeline, its content shown as the
editor previewed it; redeliver its webhook to a local receiver from the Developers screen; put two
numbers on the stop list.

With RCSGATE_CONSOLE_SCREENSHOTS=<dir> it also saves screenshots of the main screens there (how
docs/console/*.png are made: `RCSGATE_CONSOLE_SCREENSHOTS=docs/console pytest tests/test_console_browser.py -k sqlite`).
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

from conftest import LiveServer, Receiver, eventually
from console_support import PASSWORD, cheap_hashes, new_user
from rcsgate.services import accounts
from rcsgate.services.demo import ensure_demo

playwright_api = pytest.importorskip("playwright.sync_api", reason="Playwright is not installed (dev extra)")

__all__ = ["cheap_hashes"]
pytestmark = [pytest.mark.browser, pytest.mark.usefixtures("cheap_hashes")]

CHROMIUM = os.environ.get("RCSGATE_TEST_CHROMIUM", "/usr/bin/chromium")
# Debian's Chromium as root on these machines: no sandbox, no GPU, and none of its own background
# connections (the closed network refuses them at every start).
LAUNCH_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
SCREENSHOTS = os.environ.get("RCSGATE_CONSOLE_SCREENSHOTS")


def _major(version: str) -> int | None:
    match = re.search(r"(\d+)\.\d+\.\d+", version)
    return int(match[1]) if match else None


def chromium_problem() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if not (os.path.exists(CHROMIUM) or shutil.which(CHROMIUM)):
        return f"{CHROMIUM} is missing (apt-get install -y chromium; .ci/run does it)"
    try:
        out = subprocess.run(
            [CHROMIUM, "--version"], capture_output=True, text=True, timeout=30, check=False
        ).stdout
    except (OSError, subprocess.TimeoutExpired) as exc:
        return f"{CHROMIUM} --version failed: {exc}"
    installed = _major(out)
    import playwright

    browsers = Path(playwright.__file__).parent / "driver" / "package" / "browsers.json"
    try:
        wanted = next(
            b["browserVersion"]
            for b in json.loads(browsers.read_text())["browsers"]
            if b["name"] == "chromium"
        )
    except (OSError, ValueError, StopIteration) as exc:
        return f"cannot read the Chromium version Playwright expects ({browsers}): {exc}"
    if installed is None or installed != _major(wanted):
        return (
            f"{CHROMIUM} is Chromium {installed} ({out.strip()!r}) but this Playwright's driver expects "
            f"{wanted}: pin the playwright version whose browsers.json matches Debian's chromium"
        )
    return None


@pytest.fixture
def chromium() -> None:
    problem = chromium_problem()
    if problem:
        pytest.skip(problem)


@contextmanager
def browser() -> Iterator[Any]:
    """Chromium, headless, with a fresh profile. Opened after the test's setup: Playwright's sync API
    runs an event loop in this thread, where ``asyncio.run`` (LiveServer.call) no longer works."""
    with playwright_api.sync_playwright() as p:
        launched = p.chromium.launch(executable_path=CHROMIUM, headless=True, args=LAUNCH_ARGS)
        try:
            yield launched
        finally:
            launched.close()


class Ticker:
    """Moves the server's injected clock on in real time (0.5 s every 0.1 s), so the simulator's
    reports arrive while the browser waits, as they would on a real clock."""

    def __init__(self, srv: LiveServer) -> None:
        self.srv = srv
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self.run, daemon=True)

    def run(self) -> None:
        while not self.stop.wait(0.1):
            self.srv.clock.advance(0.5)

    def __enter__(self) -> Ticker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(5)


def shot(page: Any, name: str) -> None:
    if SCREENSHOTS:
        Path(SCREENSHOTS).mkdir(parents=True, exist_ok=True)
        page.screenshot(path=str(Path(SCREENSHOTS) / f"{name}.png"), full_page=True)


CONTACTS_CSV = "name,phone\nAnn,380661230101\nBob,not-a-number\nCid,380661230102\n"
NUMBERS_CSV = "phone\n380661230001\n380661230002\n380661239991\n"


def test_sign_in_import_campaign_to_done_message_timeline_and_webhook_redelivery(
    server_factory: Callable[..., LiveServer], receiver: Receiver, chromium: None, tmp_path: Path, db_url: str
) -> None:
    if not db_url.startswith("sqlite"):
        pytest.skip("the browser journey runs once (SQLite); the console's HTTP tests cover PostgreSQL")
    expect = playwright_api.expect
    srv = server_factory(run_workers=True)
    demo = srv.call(lambda db: ensure_demo(db, srv.clock, var_dir=srv.settings.var_dir))
    srv.call(lambda db: accounts.set_callback_url(db, account_id=demo.account_id, url=receiver.url))
    new_user(srv, demo.account_id, "demo@example.com")
    contacts_csv = tmp_path / "contacts.csv"
    contacts_csv.write_text(CONTACTS_CSV)
    numbers_csv = tmp_path / "numbers.csv"
    numbers_csv.write_text(NUMBERS_CSV)

    with Ticker(srv), browser() as chrome:
        page = chrome.new_page(viewport={"width": 1280, "height": 900})
        page.set_default_timeout(20_000)
        # Sign in: the console sends a signed-out browser to the sign-in page and back.
        page.goto(f"{srv.base_url}/console/campaigns")
        expect(page).to_have_url(re.compile(r"/console/login\?next=/console/campaigns$"))
        shot(page, "login")
        page.fill("input[name=email]", "demo@example.com")
        page.fill("input[name=password]", PASSWORD)
        page.click("button[type=submit]")
        expect(page).to_have_url(re.compile(r"/console/campaigns$"))

        # Contacts: import a CSV with one bad row, into a new list.
        page.goto(f"{srv.base_url}/console/contacts")
        page.set_input_files("[data-testid=import-file]", str(contacts_csv))
        page.click("[data-testid=import-upload]")
        expect(page.locator("[data-testid=column-1]")).to_have_value("phone")  # guessed from the header
        page.fill("input[name=new_list]", "Newsletter")
        shot(page, "contacts-import-mapping")
        page.click("[data-testid=import-start]")
        expect(page.locator("[data-testid=import-progress]")).to_have_attribute("data-state", "done")
        expect(page.locator("[data-testid=import-summary]")).to_contain_text("2 new contacts")
        expect(page.locator("[data-testid=import-summary]")).to_contain_text("1 row refused")
        expect(page.locator("[data-testid=import-errors]")).to_contain_text("not-a-number")
        expect(page.locator("[data-testid=import-errors] td").first).to_have_text("3")
        shot(page, "contacts-import-done")

        # A carousel campaign to a CSV of numbers; the preview follows the editor as one types.
        page.goto(f"{srv.base_url}/console/campaigns/new")
        page.check("input[name=kind][value=carousel]")
        page.fill("input[name=card_0_title]", "Spring sale")
        page.fill("textarea[name=card_0_text]", "Up to 50% off everything")
        page.fill("input[name=card_0_media]", "https://cdn.example.com/spring.png")
        page.fill("input[name=card_0_s0_text]", "Shop now")
        page.fill("input[name=card_0_s0_value]", "https://shop.example.com/sale")
        page.fill("input[name=card_1_title]", "Questions?")
        page.fill("textarea[name=card_1_text]", "Our team answers every day")
        page.fill("input[name=card_1_s0_text]", "Call us")
        page.select_option("select[name=card_1_s0_type]", "call")
        page.fill("input[name=card_1_s0_value]", "380661230000")
        preview = page.locator("#preview [data-testid=phone-preview]")
        expect(preview.locator("[data-testid=rcs-card]")).to_have_count(2)
        expect(preview.locator("[data-testid=rcs-card]").nth(1)).to_contain_text("Call us")
        expect(preview).to_contain_text("Our team answers every day")
        expect(preview).to_contain_text("Shop now")
        expect(preview).to_contain_text("spring.png")
        expect(preview.locator("[data-testid=preview-problems]")).to_have_count(0)  # the last edit is in
        editor_preview = preview.inner_text()
        page.check("input[name=source][value=csv]")
        page.set_input_files("[data-testid=csv-file]", str(numbers_csv))
        page.check("input[name=sms_enabled]")
        page.fill("textarea[name=sms_text]", "Spring sale: shop.example.com/sale")
        page.click("[data-testid=review]")
        estimate = page.locator("[data-testid=estimate]")
        expect(estimate).to_contain_text("3 of 3 recipients")
        expect(page.locator("[data-testid=estimate-total]")).to_have_text("0.1500 EUR")
        expect(page.locator("[data-testid=estimate-verdict]")).to_contain_text("cover this campaign")
        # The file's numbers survived the round trip; the preview is the same after it.
        assert page.locator("#preview [data-testid=phone-preview]").inner_text() == editor_preview
        shot(page, "campaign-new")
        page.click("[data-testid=send]")
        expect(page).to_have_url(re.compile(r"/console/campaigns/\d+$"))
        campaign_id = int(page.url.rsplit("/", 1)[1])
        # htmx polls the progress until the campaign is done.
        expect(page.locator("[data-testid=campaign-status]")).to_have_text("done", timeout=30_000)
        expect(page.locator("[data-testid=campaign-progress]")).to_contain_text("3 of 3 processed")
        expect(page.locator("svg.chart-funnel")).to_be_visible()
        shot(page, "campaign-detail")
        page.goto(f"{srv.base_url}/console/campaigns")
        expect(page.locator(f"#campaign-row-{campaign_id} [data-testid=campaign-status]")).to_have_text(
            "done"
        )
        shot(page, "campaigns")

        # Find a message of the campaign: its timeline, its content as the editor previewed it.
        page.goto(f"{srv.base_url}/console/messages")
        shot(page, "messages")
        page.fill("input[name=campaign_id]", str(campaign_id))
        page.fill("input[name=phone]", "380661230001")
        page.click("form.filters button[type=submit]")
        expect(page.locator("[data-testid=log-total]")).to_contain_text("1 message")
        page.locator("table.log a").first.click()
        expect(page.locator("[data-testid=message-status]")).to_have_text("read", timeout=15_000)
        timeline = page.locator("[data-testid=timeline]")
        for status in ("accepted", "sending", "sent", "delivered", "read"):
            expect(timeline).to_contain_text(status)
        assert page.locator("[data-testid=phone-preview]").inner_text() == editor_preview
        webhook_link = page.locator("[data-testid=webhook-link]").first
        expect(webhook_link).to_be_visible(timeout=15_000)
        shot(page, "message-detail")

        # Redeliver its first webhook from the Developers screen: the receiver gets it again.
        eventually(lambda: len(receiver.received) >= 3, timeout=15, what="the webhooks")
        webhook_link.click()
        expect(page.locator("h1")).to_contain_text("Webhook delivery")
        webhook_id = page.locator("code").first.inner_text()
        before = [r for r in receiver.received if r.headers.get("webhook-id") == webhook_id]
        assert before, [r.headers for r in receiver.received]
        page.click("button:has-text('Redeliver')")
        eventually(
            lambda: (
                len([r for r in receiver.received if r.headers.get("webhook-id") == webhook_id]) > len(before)
            ),
            timeout=15,
            what="the redelivered webhook",
        )
        again = [r for r in receiver.received if r.headers.get("webhook-id") == webhook_id][-1]
        assert again.body == before[0].body

        # The stop list: two numbers on the RCS and SMS lists.
        page.goto(f"{srv.base_url}/console/stop-list")
        page.fill("textarea[name=phones]", "380661230201\n380661230202")
        page.locator("form[action$='/stop-list/add'] input[value=sms]").check()
        page.locator("form[action$='/stop-list/add'] button[type=submit]").click()
        expect(page.locator("[data-testid=notice]")).to_contain_text("2 phones added to sms, rcs")
        expect(page.locator("[data-testid=stoplist] tbody tr")).to_have_count(2)
        shot(page, "stop-list")
        if SCREENSHOTS:
            page.goto(f"{srv.base_url}/console/contacts")
            shot(page, "contacts")
