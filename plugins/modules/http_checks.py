#!/usr/bin/python
# Copyright: algotrade.deploy maintainers
# MIT License (see LICENSE)
"""Asks several HTTP(S) endpoints at once from the managed host."""

from __future__ import annotations

DOCUMENTATION = r"""
module: http_checks
short_description: Ask several HTTP(S) endpoints at once and check each one's status
description:
  - Sends each check's request from the managed host, all checks at the same time, and
    retries a check until it answers with its expected status or its retries run out.
  - The health gate asks the API and every web terminal (refused without its login,
    answered with it, its WebSocket accepted) in one module call instead of one
    M(ansible.builtin.uri) call per request.
  - Only the status is read; a response's body is never read or returned.
version_added: 0.1.0
author: algotrade.deploy maintainers (@algotrade)
options:
  checks:
    description: The requests, each with the status it must answer with.
    type: list
    elements: dict
    required: true
    suboptions:
      name:
        description: What the check is, for the results and the failure message.
        type: str
        required: true
      url:
        description: The URL to ask (GET).
        type: str
        required: true
      status:
        description: The status the answer must have.
        type: int
        required: true
      user:
        description: The user of an HTTP basic login sent with the request.
        type: str
      password:
        description: The password of that login.
        type: str
      headers:
        description: Extra request headers.
        type: dict
        default: {}
      retries:
        description: How many more times to ask while the answer has another status.
        type: int
        default: 0
  delay:
    description: Seconds between two tries of a check.
    type: float
    default: 3
  timeout:
    description: Seconds one request may take.
    type: float
    default: 10
  validate_certs:
    description: Whether to check the server's TLS certificate.
    type: bool
    default: true
attributes:
  check_mode:
    support: full
    description: Only asks; check mode asks too.
  diff_mode:
    support: none
    description: It changes nothing to show.
"""

EXAMPLES = r"""
- name: Check the API and a web terminal
  algotrade.deploy.http_checks:
    validate_certs: false
    checks:
      - name: API
        url: http://127.0.0.1:8080/api/bots
        status: 200
        retries: 10
      - name: terminal without its login
        url: https://127.0.0.1:7681/
        status: 401
"""

RETURN = r"""
results:
  description: Each check's outcome, in the order given.
  type: list
  elements: dict
  returned: always
  contains:
    name:
      description: The check's name.
      type: str
    url:
      description: The URL asked.
      type: str
    status:
      description: The status of the last answer (-1 when none came).
      type: int
    error:
      description: Why no answer came, when none did.
      type: str
    tries:
      description: How many requests the check made.
      type: int
    ok:
      description: Whether the check answered with its expected status.
      type: bool
"""

import time
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from ansible.module_utils.basic import AnsibleModule
from ansible.module_utils.six.moves.urllib.error import HTTPError
from ansible.module_utils.urls import Request


def ask(check: dict[str, Any], timeout: float, validate_certs: bool) -> tuple[int, str]:
    """One request: the answer's status (-1 and the reason when none came)."""
    request = Request(
        headers=check["headers"],
        timeout=timeout,
        validate_certs=validate_certs,
        url_username=check["user"],
        url_password=check["password"],
        force_basic_auth=check["user"] is not None,
    )
    try:
        with request.open("GET", check["url"]) as answer:
            return answer.status, ""
    except HTTPError as error:  # any status but 2xx; the body is left unread
        error.close()
        return error.code, ""
    except Exception as error:  # refused, reset, timed out, TLS: all "no answer"
        return -1, f"{type(error).__name__}: {error}"


def run_check(check: dict[str, Any], delay: float, timeout: float, validate_certs: bool) -> dict[str, Any]:
    """Asks until the expected status comes or the retries run out."""
    tries = 0
    while True:
        tries += 1
        status, error = ask(check, timeout, validate_certs)
        if status == check["status"] or tries > check["retries"]:
            break
        time.sleep(delay)
    return {
        "name": check["name"],
        "url": check["url"],
        "status": status,
        "error": error,
        "tries": tries,
        "ok": status == check["status"],
    }


def run_checks(
    checks: list[dict[str, Any]], delay: float, timeout: float, validate_certs: bool
) -> list[dict[str, Any]]:
    """Every check at once, results in the order given."""
    if not checks:
        return []
    with ThreadPoolExecutor(max_workers=len(checks)) as pool:
        return list(pool.map(lambda check: run_check(check, delay, timeout, validate_certs), checks))


def failure(results: list[dict[str, Any]], checks: list[dict[str, Any]]) -> str:
    """One line per failed check: what it is, what it expected, what came."""
    lines = []
    for result, check in zip(results, checks, strict=True):
        if not result["ok"]:
            came = (
                f"answered {result['status']}" if result["status"] >= 0 else f"no answer ({result['error']})"
            )
            lines.append(f"{result['name']} ({result['url']}): {came}, expected {check['status']}")
    return "; ".join(lines)


def main() -> None:
    module = AnsibleModule(
        argument_spec={
            "checks": {
                "type": "list",
                "elements": "dict",
                "required": True,
                "options": {
                    "name": {"type": "str", "required": True},
                    "url": {"type": "str", "required": True},
                    "status": {"type": "int", "required": True},
                    "user": {"type": "str"},
                    "password": {"type": "str", "no_log": True},
                    "headers": {"type": "dict", "default": {}},
                    "retries": {"type": "int", "default": 0},
                },
            },
            "delay": {"type": "float", "default": 3},
            "timeout": {"type": "float", "default": 10},
            "validate_certs": {"type": "bool", "default": True},
        },
        supports_check_mode=True,
    )
    checks = module.params["checks"]
    results = run_checks(
        checks, module.params["delay"], module.params["timeout"], module.params["validate_certs"]
    )
    if not all(result["ok"] for result in results):
        module.fail_json(msg=failure(results, checks), results=results)
    module.exit_json(changed=False, results=results)


if __name__ == "__main__":
    main()
