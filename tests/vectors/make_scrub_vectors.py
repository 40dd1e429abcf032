"""Writes scrub.json.  Expected values are written by hand here, not produced by the engine.

Run: python tests/vectors/make_scrub_vectors.py
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

F = "[Filtered]"


def L(rule: str) -> str:
    return f"[Filtered:{rule}]"


GHP = "ghp_" + "a1B2c3D4e5F6g7H8i9J0k1L2m3N4o5P6q7R8"
GHO = "gho_" + "Z9y8X7w6V5u4T3s2R1q0P9o8N7m6L5k4J3i2"
GHS = "ghs_" + "0123456789abcdefghijABCDEFGHIJ012345"
PAT = "github_pat_11ABCDEFG0123456789_abcdefghijKLMNOPQRSTuvwxyz0123456789"
JWT = (
    "eyJhbGciOiJIUzI1NiIsInR5cCI6IkpXVCJ9.eyJzdWIiOiIxMjM0NTY3ODkwIiwibmFtZSI6IkpvaG4gRG9lIn0"
    ".SflKxwRJSMeKKF2QT4fwpMeJf36POk6yJV_adQssw5c"
)
PEM = "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIBAAKCAQEA7\nabcDEF==\n-----END RSA PRIVATE KEY-----"
PEM8 = "-----BEGIN PRIVATE KEY-----\nMIIEvQIBADANBgkqhkiG9w0BAQEFAASC\n-----END PRIVATE KEY-----"
PEM_EC = "-----BEGIN EC PRIVATE KEY-----\nMHcCAQEEIBkg\n-----END EC PRIVATE KEY-----"
PEM_OPENSSH = "-----BEGIN OPENSSH PRIVATE KEY-----\nb3BlbnNzaC1rZXktdjEAAAAA\n-----END OPENSSH PRIVATE KEY-----"
PUBKEY = "-----BEGIN PUBLIC KEY-----\nMIIBIjANBgkqhkiG9w0BAQEFAAOCAQ8A\n-----END PUBLIC KEY-----"
CERT = "-----BEGIN CERTIFICATE-----\nMIIDdzCCAl+gAwIBAgIE\n-----END CERTIFICATE-----"

cases: list[dict[str, Any]] = []


def pos(name: str, text: str, expected: str, **options: bool) -> None:
    assert text != expected
    case: dict[str, Any] = {"name": name, "input": text, "expected": expected}
    if options:
        case["options"] = options
    cases.append(case)


def neg(name: str, text: str, **options: bool) -> None:
    case: dict[str, Any] = {"name": "keep: " + name, "input": text, "expected": text}
    if options:
        case["options"] = options
    cases.append(case)


def key(name: str, k: str, value: Any, expected: Any) -> None:
    cases.append({"name": name, "input": {"key": k, "value": value}, "expected": expected})


# --- key rules: whole value replaced ---------------------------------------------------------------------------
for k in [
    "password", "Password", "PASSWORD", "user_password", "passwordHash", "passwd", "db_passwd", "passphrase",
    "pwd", "old_pwd", "oldPwd", "secret", "client_secret", "SECRET_KEY", "token", "access_token", "refreshToken",
    "X-Auth-Token", "api_key", "API-KEY", "apiKey", "x-api-key", "X-Api-Key", "apikey", "aws_access_key_id",
    "auth", "Authorization", "proxy-authorization", "oauth_state", "credential", "credentials", "private_key",
    "privateKey", "session", "sessionid", "SESSION_ID", "cookie", "Set-Cookie", "csrf", "csrftoken",
    "X-CSRF-Token", "xsrf-token", "signature", "sig", "request_sig", "card_number", "cvv", "cvc",
]:  # fmt: skip
    key(f"key rule: {k}", k, "hunter2-value", F)
key("key rule: number value", "pin_token", 123456, F)
key("key rule: already filtered stays", "password", F, F)
key("key rule: empty string stays", "password", "", "")
key("key rule: null stays", "password", None, None)
key("key rule: bool stays", "password", True, True)
key("key rule: nested dict keeps shape", "session", {"id": "abc", "n": 3}, {"id": F, "n": F})
key("key rule: list keeps shape", "tokens", ["a1", "b2"], [F, F])
# --- key rules: keys that must be kept -------------------------------------------------------------------------
for k in [
    "workflow_id", "run_id", "step_id", "tenant", "component", "event_id", "trace_id", "span_id", "parent_span_id",
    "author", "authority", "username", "user", "email", "url", "message", "cwd", "keyboard", "monkey", "design",
    "signal", "passage", "step", "attempt", "status", "key", "keys", "id", "name", "host",
]:  # fmt: skip
    key(f"keep key: {k}", k, "plain-value-123", "plain-value-123")
key("allow-listed key still gets value rules", "run_id", "token=abc123", "token=" + L("secret_param"))
key("kept key still gets value rules", "url", "https://x.io/?token=abc123", "https://x.io/?token=" + L("secret_param"))
# --- [key, value] pairs (a list of pairs under "tags", "headers", "cookies", ...) -------------------------------------
# Scrubbing twice changes nothing: the key is judged as sent and as stored (its label names an access key) ...
key("pair key holding a secret", "tags", [["AKIAIOSFODNN7EXAMPLE", 5]], [[L("aws_access_key"), F]])
# ... and an allow-listed key stays readable under a key rule ("cookies"), like a dict key, so it keeps its value.
key("pair, allow-listed key, key rule", "cookies", [["run_id", "r1"], ["sid", "abc"]], [["run_id", "r1"], [F, F]])

# --- value rules ---------------------------------------------------------------------------------------------------
pos("bearer", "Authorization failed for Bearer abc.def-123", "Authorization failed for Bearer " + L("bearer"))
pos("bearer lower", "bearer 9f8e7d6c5b4a", "bearer " + L("bearer"))
pos("bearer stripe", "Bearer sk_live_51HxYzSECRETTOKEN", "Bearer " + L("bearer"))
pos("bearer base64", "got Bearer dGhpcyBpcyBhIHRva2Vu== back", "got Bearer " + L("bearer") + " back")
pos(
    "authorization header basic",
    "Authorization: Basic dXNlcjpwYXNz",
    "Authorization: Basic " + L("authorization_header"),
)
pos("authorization header token", "authorization=Token abcdef", "authorization=Token " + L("authorization_header"))
pos(
    "authorization header bearer in code",
    '{"Authorization": "Bearer sk_live_51HxYzSECRETTOKEN"}',
    '{"Authorization": "Bearer ' + L("bearer") + '"}',
)
pos("jwt", "token " + JWT, "token " + L("jwt"))
pos("jwt in json", '{"t": "' + JWT + '"}', '{"t": "' + L("jwt") + '"}')
pos("jwt unsigned", "jwt=x eyJhbGciOiJub25lIn0.eyJzdWIiOiIxIn0.", "jwt=x " + L("jwt"))
pos("pem rsa", "key:\n" + PEM + "\nend", "key:\n" + L("pem_private_key") + "\nend")
pos("pem pkcs8", PEM8, L("pem_private_key"))
pos("pem ec", PEM_EC, L("pem_private_key"))
pos("pem openssh", PEM_OPENSSH, L("pem_private_key"))
pos("pem truncated", "-----BEGIN RSA PRIVATE KEY-----\nMIIEpAIB", L("pem_private_key"))
U = L("url_credentials")
pos("url credentials", "postgres://app:s3cret@db:5432/app", f"postgres://app:{U}@db:5432/app")
pos(
    "url credentials https", "GET https://bob:hunter2@example.com/x failed", f"GET https://bob:{U}@example.com/x failed"
)
pos(
    "url credentials redis",
    "redis://default:pa55w0rd@cache.internal:6379/0",
    f"redis://default:{U}@cache.internal:6379/0",
)
pos("url credentials amqp", "amqp://guest:guest@rabbit//", f"amqp://guest:{U}@rabbit//")
pos("url credentials mongodb+srv", "mongodb+srv://u:p%40ss@cluster0.x.net", f"mongodb+srv://u:{U}@cluster0.x.net")
pos("url credentials quoted", "'https://a:b123@h.io'", f"'https://a:{U}@h.io'")
S = L("secret_param")
for p in [
    "token", "key", "api_key", "apikey", "sig", "signature", "secret", "password", "access_token", "client_secret",
    "refresh_token", "id_token", "passwd", "pwd", "X-Amz-Signature", "X-Amz-Security-Token", "auth_token", "TOKEN",
]:  # fmt: skip
    pos(
        f"query param {p}",
        f"https://api.example.com/v1?{p}=abc123XYZ&page=2",
        f"https://api.example.com/v1?{p}={S}&page=2",
    )
pos("query param first of many", "/cb?token=t0k&state=ok", f"/cb?token={S}&state=ok")
pos("query param last", "/cb?state=ok&sig=deadbeef", f"/cb?state=ok&sig={S}")
pos("query param in quotes", "url='https://h/?token=abcdef123456'", f"url='https://h/?token={S}'")
pos(
    "query param in exception",
    "POST https://api.example.com/hooks?token=abcdef123456 failed",
    f"POST https://api.example.com/hooks?token={S} failed",
)
pos("form body", "user=bob&password=hunter2&remember=1", f"user=bob&password={S}&remember=1")
pos("two params", "?key=k1&secret=s2", f"?key={S}&secret={S}")
A = L("secret_assignment")
pos("assignment python", '    password = "hunter2"', f'    password = "{A}"')
pos("assignment single quotes", "api_key='abc123'", f"api_key='{A}'")
pos("assignment json", '{"client_secret": "xyz789", "id": 1}', f'{{"client_secret": "{A}", "id": 1}}')
pos("assignment yaml-ish", "db_password: 'p@ss w0rd'", f"db_password: '{A}'")
pos("assignment constant", 'GITHUB_TOKEN = "not-a-real-one"', f'GITHUB_TOKEN = "{A}"')
pos("aws access key", "creds AKIAIOSFODNN7EXAMPLE used", "creds " + L("aws_access_key") + " used")
pos("aws session key", "ASIAY34FZKBOKMUTVV7A", L("aws_access_key"))
pos("aws role id", "AROAEXAMPLEID1234567", L("aws_access_key"))
pos("github ghp", f"push failed with {GHP}", "push failed with " + L("github_token"))
pos("github gho", GHO, L("github_token"))
pos("github ghs", f"x {GHS} y", "x " + L("github_token") + " y")
pos("github fine-grained pat", PAT, L("github_token"))
pos("slack bot", "xoxb-123456789012-1234567890123-AbCdEfGhIjKlMnOpQrStUvWx", L("slack_token"))
pos("slack user", "token xoxp-1234567890-abcdef", "token " + L("slack_token"))
pos("slack app", "xoxa-2-1234567890-abcdef", L("slack_token"))
pos(
    "slack webhook",
    "https://hooks.slack.com/services/T00000000/B00000000/XXXXXXXXXXXXXXXXXXXXXXXX",
    "https://hooks.slack.com/services/" + L("slack_webhook"),
)
pos("stripe sk_live", "sk_live_51HxYzSECRETTOKEN", L("stripe_key"))
pos("stripe sk_test", "key is sk_test_4eC39HqLyjWDarjtT1zdp7dc.", "key is " + L("stripe_key") + ".")
pos("stripe rk_live", "rk_live_abcdefghij0123", L("stripe_key"))
pos("stripe whsec", "whsec_abcdefghijklmnopqrstuvwxyz012345", L("stripe_key"))
pos("google api key", "AIzaSyDdI0hCZtE6vySjMm-WEfRq3CPzqKqqsHI", L("google_api_key"))
pos("prefixed key", 'step_http_call("u", "key_ABCDEF")', 'step_http_call("u", "' + L("prefixed_key") + '")')
pos("mailgun key", "key-0123456789abcdef0123456789abcdef", L("prefixed_key"))
C = L("card_number")
pos("visa", "card 4111111111111111 declined", f"card {C} declined")
pos("visa spaces", "4111 1111 1111 1111", C)
pos("visa dashes", "4111-1111-1111-1111", C)
pos("visa 13", "old visa 4222222222222", f"old visa {C}")
pos("mastercard", "5555555555554444", C)
pos("mastercard 51", "pan=5105105105105100;", f"pan={C};")
pos("mastercard 2-series", "2223003122003222", C)
pos("amex", "3782 822463 10005", C)
pos("amex compact", "378282246310005", C)
pos("discover", "6011111111111117", C)
pos("jcb", "3530111333300000", C)
pos("diners", "38520000023237", C)
pos("unionpay", "6200000000000005", C)
pos("card in sentence end", "Paid with 4012888888881881.", f"Paid with {C}.")
pos("card in json", '{"pan": "4000056655665556"}', f'{{"pan": "{C}"}}')
IB = L("iban")
pos("iban de", "DE89370400440532013000", IB)
pos("iban de spaced", "IBAN DE89 3704 0044 0532 0130 00 EUR", f"IBAN {IB} EUR")
pos("iban gb", "GB82WEST12345698765432", IB)
pos("iban gb spaced", "GB82 WEST 1234 5698 7654 32", IB)
pos("iban fr", "to FR1420041010050500013M02606 today", f"to {IB} today")
pos("iban nl", "NL91ABNA0417164300", IB)
pos("iban ch", "CH9300762011623852957", IB)
pos("iban es", "ES9121000418450200051332", IB)
pos("iban be", "BE68539007547034", IB)
pos("iban it", "IT60X0542811101000000123456", IB)
pos("iban at", "AT611904300234573201", IB)
pos("iban no", "NO9386011117947", IB)
E = L("email")
pos("email", "mail alice@example.com now", f"mail {E} now", scrub_emails=True)
pos("email plus", "bob.smith+tag@mail.co.uk", E, scrub_emails=True)
pos("email in angle", "<ops@acme.io>", f"<{E}>", scrub_emails=True)
pos("ipv4", "from 203.0.113.9 port 80", "from " + L("ipv4") + " port 80", scrub_ips=True)
pos("ipv4 private", "10.0.0.1", L("ipv4"), scrub_ips=True)
pos("ipv6", "client 2001:db8::8a2e:370:7334", "client " + L("ipv6"), scrub_ips=True)
pos("ipv6 loopback", "::1 refused", L("ipv6") + " refused", scrub_ips=True)
pos(
    "several in one",
    "GET https://u:p4ss@h.io/?token=t0k from 4111111111111111",
    f"GET https://u:{U}@h.io/?token={S} from {C}",
)

# --- negatives: must pass through untouched ---------------------------------------------------------------------
for name, text in [
    ("uuid", "7def14da-5943-488b-922b-a1b8d703ccb7"),
    ("uuid hex", "7def14da5943488b922ba1b8d703ccb7"),
    ("git sha", "commit 389e7eddb50c45e0baa2bfaf528f60ca12345678"),
    ("short sha", "fixed in a1b2c3d"),
    ("iso timestamp", "2026-11-28T16:56:34.776662Z"),
    ("iso with offset", "2026-11-28 16:56:34+02:00"),
    ("epoch ms", "1732812994776"),
    ("epoch ns", "1732812994776662123"),
    ("order number", "ORD-123456"),
    ("order number long", "order ORD-2026-000123 shipped"),
    ("phone", "+1 (555) 010-9999"),
    ("phone intl", "+44 20 7946 0958"),
    ("phone digits", "call 0049301234567"),
    ("16 digits failing luhn", "4111111111111112"),
    ("16 digits failing luhn mc", "5555555555554445"),
    ("16 digits failing luhn spaced", "4111 1111 1111 1112"),
    ("16 digits unknown prefix", "1234567812345670"),
    ("19 digit id", "9999999999999999999"),
    ("version", "3.11.7"),
    ("version four part", "1.4.2.0"),
    ("version release", "meshhook-worker@1.4.2"),
    ("semver pre", "v2.0.0-rc.1+build.5"),
    ("prose", "The quick brown fox jumps over the lazy dog."),
    ("prose auth", "Authentication failed for user"),
    ("prose bearer", "Bearer authentication is required"),
    ("prose token", "token expired, please log in again"),
    ("prose password", "password must be at least 8 characters"),
    ("prose secret", "the secret sauce"),
    ("prose key", "missing key in dict"),
    ("python keyerror", "KeyError: 'api_key'"),
    ("file path", "/srv/meshhook/worker/worker.py"),
    ("windows path", "C:\\Users\\app\\token_store\\cache.db"),
    ("file with secret in name", "/etc/app/secrets.yaml"),
    ("hex id", "0x7f5f43ab4340"),
    ("scope repr", "<Scope id=0x7f5f43ab4340 name=None type=ScopeType.CURRENT>"),
    ("trace id", "389e7eddb50c45e0baa2bfaf528f60ca"),
    ("span id", "824a86bc769635e7"),
    ("run id", "run_0"),
    ("workflow id", "wf_orders"),
    ("plain url", "https://api.example.com/hooks"),
    ("url with harmless params", "https://api.example.com/search?q=rust&page=2&sort=desc"),
    ("url with port", "https://example.com:8443/path?x=1"),
    ("url with user only", "ssh://git@github.com/org/repo.git"),
    ("scp-like git url", "git@github.com:org/repo.git"),
    ("param containing key", "https://h/?monkey=1&keyboard=us"),
    ("param prefix", "https://h/?keyword=shoes"),
    ("snake identifier key_", "key_name"),
    ("snake identifier token_", "token_count"),
    ("constant", "TOKEN_EXPIRED"),
    ("sk_ but no live", "sk_other_thing"),
    ("ghp too short", "ghp_short"),
    ("xox in word", "xoxo hugs"),
    ("aws-like lowercase", "akiaiosfodnn7example"),
    ("public key pem", PUBKEY),
    ("certificate pem", CERT),
    ("jwt-like header only", "eyJhbGciOiJIUzI1NiJ9"),
    ("email when off", "alice@example.com"),
    ("ip when off", "203.0.113.9"),
    ("ipv6 when off", "2001:db8::1"),
    ("time", "12:30:45"),
    ("mac address", "aa:bb:cc:dd:ee:ff", ),
    ("iban failing mod97", "DE89370400440532013001"),
    ("iban-like word", "AB12CDEFGHIJKLMNOP"),
    ("country code plus digits", "DE12 is a code"),
    ("amount", "total 1,234,567.89 EUR"),
    ("sql", "SELECT * FROM users WHERE id = $1"),
    ("base64 blob", "aGVsbG8gd29ybGQ="),
    ("log line", "INFO worker-7 step fetch-order ok in 123 ms"),
    ("filtered marker", F),
    ("already scrubbed bearer", "Bearer " + L("bearer")),
    ("already scrubbed url", f"https://u:{U}@h.io"),
    ("already scrubbed param", f"?token={S}"),
    ("already scrubbed assignment", f'password = "{A}"'),
    ("empty", ""),
    ("short", "pwd"),
    ("unicode", "Grüße aus Köln — ok ✓"),
    ("digits in hex", "deadbeef4111111111111111cafe"),
    ("card inside longer number", "94111111111111111"),
    ("decimal number", "3.14159265358979323846"),
    ("python code", "def step_http_call(url, api_key):"),
    ("dict literal without secret", '{"step": "call-crm", "attempt": 2}'),
]:  # fmt: skip
    neg(name, text)
neg("version with ips on", "release 3.11.7", scrub_ips=True)
neg("time with ips on", "at 12:30:45", scrub_ips=True)
neg("mac with ips on", "aa:bb:cc:dd:ee:ff", scrub_ips=True)
neg("at-sign without domain with emails on", "@mention me", scrub_emails=True)
neg("decorator with emails on", "@app.route('/x')", scrub_emails=True)

if __name__ == "__main__":
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate vector names"
    out = Path(__file__).with_name("scrub.json")
    out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    negatives = sum(c["input"] == c["expected"] for c in cases)
    print(f"{len(cases)} vectors ({len(cases) - negatives} positive, {negatives} negative) -> {out}")
