"""Planted secrets for the leak tests of both SDK layers (tests/test_sdk_leaks.py, tests/test_js_leaks.py), and
what the server serves about a project, to look for them in."""

from __future__ import annotations

import base64
import json
import secrets
import string
from typing import Any

import httpx

from stackwatch.scrub.validators import luhn_ok
from tests.conftest import ServerProcess

ALNUM = string.ascii_letters + string.digits


def rand(n: int, alphabet: str = ALNUM) -> str:
    return "".join(secrets.choice(alphabet) for _ in range(n))


def card_number() -> str:
    """A random 16-digit Visa number that passes the Luhn check."""
    body = "4" + rand(14, string.digits)
    check = next(str(d) for d in range(10) if luhn_ok(body + str(d)))
    return body + check


def iban() -> str:
    """A random German IBAN with valid mod-97 check digits."""
    bban = rand(18, string.digits)
    numeric = bban + "1314" + "00"  # D=13, E=14, then "00" for the check digits
    return f"DE{98 - int(numeric) % 97:02d}{bban}"


def jwt() -> tuple[str, str]:
    def part(value: dict[str, str]) -> str:
        return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()

    signature = rand(43)
    return f"{part({'alg': 'HS256', 'typ': 'JWT'})}.{part({'sub': rand(16)})}.{signature}", signature


def plant_secrets() -> tuple[dict[str, str], list[str]]:
    """The secrets to plant, by (secret-looking) name, and the markers that must never be seen."""
    token, signature = jwt()
    pem_lines = [rand(64) for _ in range(4)]
    values = {
        "stripe_api_key": "sk_live_" + rand(24),
        "jwt_token": token,
        "bearer_token": "9" + rand(31),
        "url_password": "pw" + rand(16) + "7",
        "query_token": rand(24),
        "aws_access_key": "AKIA" + rand(16, string.ascii_uppercase + string.digits),
        "github_token": "ghp_" + rand(36),
        "password": rand(20),
        "opaque_secret": rand(22),
        "card_number": card_number(),
        "iban": iban(),
        "pem_private_key": "-----BEGIN RSA PRIVATE KEY-----\n"
        + "\n".join(pem_lines)
        + "\n-----END RSA PRIVATE KEY-----",
    }
    markers = [value for key, value in values.items() if key not in ("jwt_token", "pem_private_key")]
    markers += [token.split(".")[1], signature, *pem_lines]
    return values, markers


def leaked(text: str | bytes, markers: list[str]) -> list[str]:
    data = text.encode() if isinstance(text, str) else text
    return [marker for marker in markers if marker.encode() in data]


def meta_rules(meta: Any, path: str = "") -> set[tuple[str, str]]:
    """``{(dotted path, rule)}`` for every remark in a ``_meta`` tree."""
    found: set[tuple[str, str]] = set()
    if not isinstance(meta, dict):
        return found
    for key, value in meta.items():
        if key == "" and isinstance(value, dict):
            found |= {(path, str(remark[0])) for remark in value.get("rem") or []}
        else:
            found |= meta_rules(value, f"{path}.{key}" if path else key)
    return found


def api_get(server: ServerProcess, path: str, **params: Any) -> httpx.Response:
    headers = {"Authorization": f"Bearer {server.token}"}
    response = httpx.get(f"{server.base_url}/api/v1{path}", params=params, headers=headers, timeout=10)
    assert response.status_code == 200, f"GET {path}: {response.status_code} {response.text}"
    return response


def everything_served(server: ServerProcess, project: str = "python") -> tuple[str, list[dict[str, Any]]]:
    """The text of every REST API answer about a project's issues and events, and the event details."""
    texts: list[str] = []
    details: list[dict[str, Any]] = []
    issues = api_get(server, f"/projects/{project}/issues", limit=100)
    texts.append(issues.text)
    for issue in issues.json()["data"]:
        texts.append(api_get(server, f"/issues/{issue['id']}").text)
        events = api_get(server, f"/issues/{issue['id']}/events", limit=100)
        texts.append(events.text)
        for event in events.json()["data"]:
            detail = api_get(server, f"/events/{event['event_id']}")
            texts.append(detail.text)
            details.append(detail.json())
    return "\n".join(texts), details
