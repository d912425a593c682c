"""The health gate's HTTP checks in one call (module algotrade.deploy.http_checks, filter
algotrade.deploy.terminal_checks), against a real HTTP server on this machine: each
check's status, logins, retries, a failure naming every failed check, and a password that
never shows in the output."""

from __future__ import annotations

import base64
import json
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from testlib import REPO, collection_plugin

http_checks = collection_plugin("modules", "http_checks")
# The filter imports secret_text by its collection's name, as Ansible loads it.
sys.path.insert(0, str(REPO / ".collections"))
terminal_checks = collection_plugin("filter", "services").terminal_checks

PASSWORD = "pw/+=@:%#?&x"  # noqa: S105
LOGIN = "Basic " + base64.b64encode(f"tui:{PASSWORD}".encode()).decode()


class Handler(BaseHTTPRequestHandler):
    """/ : 401 without the login, 200 with it; /ws: 101 for a WebSocket upgrade with the
    login and the Origin of the server; /slow: 503 until its third request; /sleep: 1 s,
    counting the requests in it at once."""

    slow_calls = 0
    sleeping = 0
    most_sleeping = 0
    lock = threading.Lock()

    def do_GET(self) -> None:
        authorized = self.headers.get("Authorization") == LOGIN
        if self.path == "/":
            self.send_response(200 if authorized else 401)
        elif self.path == "/ws":
            upgrade = self.headers.get("Upgrade") == "websocket" and self.headers.get("Sec-WebSocket-Key")
            origin = self.headers.get("Origin") == f"http://{self.headers.get('Host')}"
            self.send_response(101 if authorized and upgrade and origin else 403)
            if authorized and upgrade and origin:
                self.send_header("Upgrade", "websocket")
                self.send_header("Connection", "Upgrade")
        elif self.path == "/slow":
            Handler.slow_calls += 1
            self.send_response(200 if Handler.slow_calls >= 3 else 503)
        elif self.path == "/sleep":
            with Handler.lock:
                Handler.sleeping += 1
                Handler.most_sleeping = max(Handler.most_sleeping, Handler.sleeping)
            time.sleep(1)
            with Handler.lock:
                Handler.sleeping -= 1
            self.send_response(200)
        else:
            self.send_response(404)
        self.send_header("Content-Length", "0")
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:
        pass


@pytest.fixture
def server() -> Iterator[str]:
    Handler.slow_calls = Handler.sleeping = Handler.most_sleeping = 0
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_port}"
    httpd.shutdown()
    httpd.server_close()


def check(name: str, url: str, status: int, **more: object) -> dict[str, Any]:
    return {
        "name": name,
        "url": url,
        "status": status,
        "user": None,
        "password": None,
        "headers": {},
        "retries": 0,
    } | more


def run(checks: list[dict[str, Any]], delay: float = 0.1) -> list[dict[str, Any]]:
    results: list[dict[str, Any]] = http_checks.run_checks(checks, delay, 5, True)
    return results


def test_each_terminal_check_passes_against_a_terminal_that_works(server: str) -> None:
    """The filter's three checks per terminal (refused without its login, answered with it,
    its WebSocket upgraded with it and the terminal's origin) pass against a server that
    asks for the login and takes the upgrade; the trailing newline of a vaulted password
    goes, as everywhere else."""
    port = int(server.rsplit(":", 1)[1])
    terminals = {"live-bot-tui": {"terminal": {"port": port, "user": "tui", "password": PASSWORD + "\n"}}}
    checks = [check(**c) for c in terminal_checks(terminals, "http://127.0.0.1")]
    results = run(checks)
    assert [r["status"] for r in results] == [401, 200, 101]
    assert all(r["ok"] for r in results)
    # Asked again when a busy proxy answers late (each timed out once under load, one try each).
    assert [c["retries"] for c in checks] == [2, 2, 2]


def test_a_terminal_that_lets_anyone_in_fails_its_check(server: str) -> None:
    """A proxy that serves the terminal without asking for the login fails the check that
    expects 401, and the failure names the check, what came and what was expected."""
    checks = [check("web terminal t without its login", f"{server}/", 401, user="tui", password=PASSWORD)]
    results = run(checks)
    assert not results[0]["ok"]
    assert http_checks.failure(results, checks) == (
        f"web terminal t without its login ({server}/): answered 200, expected 401"
    )


def test_a_wrong_login_or_origin_is_not_upgraded(server: str) -> None:
    port = int(server.rsplit(":", 1)[1])
    terminals = {"t": {"terminal": {"port": port, "user": "tui", "password": "wrong"}}}
    results = run([check(**c) for c in terminal_checks(terminals, "http://127.0.0.1")])
    assert [r["ok"] for r in results] == [True, False, False]
    assert [r["status"] for r in results] == [401, 401, 403]


def test_a_check_is_retried_until_its_status_comes(server: str) -> None:
    results = run([check("API", f"{server}/slow", 200, retries=5)])
    assert results[0] == {
        "name": "API",
        "url": f"{server}/slow",
        "status": 200,
        "error": "",
        "tries": 3,
        "ok": True,
    }


def test_retries_end(server: str) -> None:
    results = run([check("API", f"{server}/slow", 200, retries=1)])
    assert (results[0]["status"], results[0]["tries"], results[0]["ok"]) == (503, 2, False)


def test_no_answer_is_a_failure_with_its_reason() -> None:
    with ThreadingHTTPServer(("127.0.0.1", 0), Handler) as closed:
        url = f"http://127.0.0.1:{closed.server_port}/"
    checks = [check("API", url, 200)]
    results = run(checks)
    assert results[0]["status"] == -1
    assert "no answer (" in http_checks.failure(results, checks)


def test_the_checks_run_at_the_same_time(server: str) -> None:
    """Four slow requests are in the server at the same time (the server counts them, no
    clock is asserted): the gate's checks of every terminal cost one request's time."""
    results = run([check(f"c{n}", f"{server}/sleep", 200) for n in range(4)])
    assert all(r["ok"] for r in results)
    assert Handler.most_sleeping == 4


def test_the_module_fails_naming_each_failed_check_and_never_shows_the_password(
    server: str, tmp_path: Path
) -> None:
    """Through Ansible at -vvv: the failure names both failed checks; the login's password
    (a no_log option) appears nowhere in the output."""
    checks = [
        {"name": "open terminal", "url": f"{server}/", "status": 401, "user": "tui", "password": PASSWORD},
        {"name": "no terminal", "url": f"{server}/missing", "status": 200},
        {"name": "fine", "url": f"{server}/", "status": 200, "user": "tui", "password": PASSWORD},
    ]
    args = json.dumps({"checks": checks, "delay": 0})
    result = subprocess.run(
        ["ansible", "localhost", "-vvv", "-m", "algotrade.deploy.http_checks", "-a", args],
        capture_output=True,
        text=True,
        check=False,
        cwd=REPO,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0, output
    assert "open terminal (" in output
    assert "answered 200, expected 401" in output
    assert "no terminal (" in output
    assert "answered 404, expected 200" in output
    assert "fine (" not in output.split("msg", 1)[-1].split("\n", 1)[0]
    assert PASSWORD not in output
