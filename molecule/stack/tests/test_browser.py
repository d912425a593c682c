"""A person's view: headless Chromium (Debian's) logs in to the web terminal over TLS.

The browser runs on the controller, outside the stack host, and trusts exactly the
stack's certificate (its public key pinned), not any certificate. The screenshot is
kept in .cache/artifacts/ for a human to look at.
"""

from __future__ import annotations

import base64
import hashlib
import json
import subprocess

import testinfra.host
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from playwright.sync_api import sync_playwright
from stackenv import STACK_HOSTS, VARS, api, release_file
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


def test_browser_shows_the_tui_and_a_key_press_changes_it(host: testinfra.host.Host) -> None:
    for name in ("browser-a", "browser-b"):
        api(host, "POST", "/api/bots", {"name": name, "symbol": "BTC"})
    pin = spki_pin(host.file(release_file(host, "tls", "certificate.pem")).content_string)
    url = f"https://{address_of('stack-a')}:7681/"
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path="/usr/bin/chromium",
            args=["--no-sandbox", f"--ignore-certificate-errors-spki-list={pin}"],
        )
        try:
            context = browser.new_context(
                http_credentials={"username": VARS["stack_tui_user"], "password": VARS["stack_tui_password"]},
                viewport={"width": 1000, "height": 640},
            )
            page = context.new_page()
            response = page.goto(url)
            assert response is not None
            assert response.status == 200
            rows = page.locator(".xterm-rows")
            rows.get_by_text("algo-trade live bot TUI sample-2").wait_for(timeout=15000)
            rows.get_by_text("Selected:").wait_for(timeout=15000)
            before = selected_line(rows.inner_text())
            page.locator(".xterm").click()
            page.keyboard.press("j")
            page.wait_for_function(
                "before => !document.querySelector('.xterm-rows').innerText.includes(before)", arg=before
            )
            after = selected_line(rows.inner_text())
            page.screenshot(path=str(ARTIFACTS / "stack-web-terminal.png"))
        finally:
            browser.close()
    assert after != before, after


def selected_line(text: str) -> str:
    return next(line.strip() for line in text.splitlines() if "Selected:" in line)
