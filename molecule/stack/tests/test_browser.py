"""A person's view: headless Chromium (Debian's) logs in to each web terminal over TLS.

The browser runs on the controller, outside the stack host, and trusts exactly the
stack's certificate (its public key pinned), not any certificate. The screenshot is
kept in .cache/artifacts/ for a human to look at.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess
from collections.abc import Callable

import testinfra.host
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import HttpCredentials, Page, sync_playwright
from stackenv import STACK_HOSTS, VARS, release_file
from testlib import REPO

testinfra_hosts = STACK_HOSTS
ARTIFACTS = REPO / ".cache" / "artifacts"


def spki_pin(pem: str) -> str:
    """Chromium's pin for a certificate: base64 SHA-256 of its SubjectPublicKeyInfo."""
    key = x509.load_pem_x509_certificate(pem.encode()).public_key()
    der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return base64.b64encode(hashlib.sha256(der).digest()).decode()


def address_of(instance: str) -> str:
    inspect = ["docker", "inspect", "-f", "{{json .NetworkSettings.Networks}}", instance]
    networks = json.loads(subprocess.run(inspect, capture_output=True, text=True, check=True).stdout)
    return str(networks["molecule-stack"]["IPAddress"])


def browse(url: str, login: HttpCredentials, pin: str, check: Callable[[Page], None], shot: str) -> None:
    """Opens url in headless Chromium with the login, trusting only the pinned key, runs
    check on the page and keeps a screenshot."""
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            context = browser.new_context(http_credentials=login, viewport={"width": 1000, "height": 640})
            page = context.new_page()
            response = page.goto(url)
            assert response is not None
            assert response.status == 200
            check(page)
            page.screenshot(path=str(ARTIFACTS / shot))
        finally:
            browser.close()


def test_browser_shows_the_live_bot_tui_and_a_key_press_changes_it(host: testinfra.host.Host) -> None:
    """The live-bot TUI keeps its own registry (upstream's: it does not see the daemon's
    bots); j moves its selection."""
    pin = spki_pin(host.file(release_file(host, "tls", "certificate.pem")).content_string)
    moved: list[str] = []

    def check(page: Page) -> None:
        rows = page.locator(".xterm-rows")
        rows.get_by_text("algo-trade live-bot-tui sample-2").wait_for(timeout=15000)
        rows.get_by_text("Selected:").wait_for(timeout=15000)
        before = selected_line(rows.inner_text())
        page.locator(".xterm").click()
        page.keyboard.press("j")
        page.wait_for_function(
            "before => !document.querySelector('.xterm-rows').innerText.includes(before)", arg=before
        )
        moved.extend([before, selected_line(rows.inner_text())])

    login: HttpCredentials = {"username": VARS["stack_tui_user"], "password": VARS["stack_tui_password"]}
    browse(f"https://{address_of('stack-a')}:7681/", login, pin, check, "stack-web-terminal.png")
    assert moved[1] != moved[0], moved


def test_browser_shows_the_backtest_manager_with_its_own_login(host: testinfra.host.Host) -> None:
    """The second web terminal, on its own port with its own login: the backtest manager
    reads TimescaleDB through the config's database URL and shows what it found."""
    pin = spki_pin(host.file(release_file(host, "tls", "certificate.pem")).content_string)

    def check(page: Page) -> None:
        rows = page.locator(".xterm-rows")
        rows.get_by_text("algo-trade backtest-manager-tui sample-2").wait_for(timeout=15000)
        rows.get_by_text("rows in backtest_results").wait_for(timeout=30000)

    terminal = VARS["stack_services_overrides"]["backtest-manager"]["terminal"]
    login: HttpCredentials = {"username": terminal["user"], "password": terminal["password"]}
    browse(f"https://{address_of('stack-a')}:7682/", login, pin, check, "stack-backtest-manager.png")


def selected_line(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if "Selected:" in line)
