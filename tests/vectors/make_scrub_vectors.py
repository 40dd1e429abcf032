"""Writes scrub.json.  Expected values are written by hand here, not produced by the engine.

Run: python tests/vectors/make_scrub_vectors.py
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
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


_LABEL = re.compile(r"\[Filtered(?::[a-z0-9_]+)?\]")


def removed(text: str, expected: str) -> list[str]:
    """The parts of ``text`` that ``expected`` replaces with labels (what must be found nowhere downstream)."""
    pattern = "(.+?)".join(re.escape(piece) for piece in _LABEL.split(expected))
    match = re.fullmatch(pattern, text, re.S)
    assert match is not None, f"{expected!r} is not {text!r} with parts replaced"
    return list(match.groups())


def pos(name: str, text: str, expected: str, **options: bool) -> None:
    assert text != expected
    case: dict[str, Any] = {"name": name, "input": text, "expected": expected, "secrets": removed(text, expected)}
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

# --- the audit's gaps (issue 10) -----------------------------------------------------------------------------------
# Every gap has positives and negatives here; each case is tagged "gap" so that the server and SDK tests can run
# exactly these through a real digest and a real component process.  Random-looking tokens are fixed literals
# (drawn once from a seeded generator) so that the file is stable.
_first_gap = len(cases)
AWS_EXAMPLE_ID, AWS_EXAMPLE_SECRET = "AKIAIOSFODNN7EXAMPLE", "wJalrXUtnFEMI/K7MDENG/bPxRfiCYEXAMPLEKEY"
_rnd = random.Random(20261202)
B62 = string.ascii_letters + string.digits


def _token(n: int, alphabet: str = B62 + "+/") -> str:
    return "".join(_rnd.choice(alphabet) for _ in range(n))


AWS_SECRET = _token(40)
TOKEN32, TOKEN48, TOKEN64 = _token(32, B62), _token(48, B62), _token(64, B62)
B64TOKEN = base64.b64encode(_rnd.randbytes(30)).decode()
B64URL = base64.urlsafe_b64encode(_rnd.randbytes(32)).decode().rstrip("=")
HEX32 = "".join(_rnd.choice("0123456789abcdef") for _ in range(32))
GHP2 = "ghp_" + _token(36, B62)


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


# URL credentials without a user, and passwords holding "@"
pos("url credentials without user", "redis://:pw0rd123@cache:6379/0", f"redis://:{U}@cache:6379/0")
pos("url credentials password with @", "postgres://app:p@ss@db:5432/app", f"postgres://app:{U}@db:5432/app")
pos(
    "url credentials password with two @", "mongodb://admin:s3cr@t@w0rd@mongo/admin", f"mongodb://admin:{U}@mongo/admin"
)
pos("url credentials amqp no user", "connect amqp://:guest1@rabbit//", f"connect amqp://:{U}@rabbit//")
neg("url port then scoped package", "https://registry.npmjs.org:443/@babel/core")
neg("url path with @user", "https://medium.com/@alice/a-post-1234")
neg("mailto", "mailto:alice@example.com")
neg("url ipv6 host", "http://[::1]:8080/healthz")
# curl -u user:password
CL = L("cli_credentials")
pos("curl -u", "curl -u admin:hunter2 https://api.example.com", f"curl -u admin:{CL} https://api.example.com")
pos("curl --user=", "curl --user=deploy:s3cr3t -X POST https://x.io", f"curl --user=deploy:{CL} -X POST https://x.io")
pos("curl -u empty user", "curl -u :tok3n-only https://x.io", f"curl -u :{CL} https://x.io")
pos("curl -u quoted", "curl -u 'bob:pa55 word' https://x.io", f"curl -u 'bob:{CL} word' https://x.io")
pos("curl -U proxy", "curl -U proxyuser:proxypass https://x.io", f"curl -U proxyuser:{CL} https://x.io")
neg("curl -u without password", "curl -u admin https://api.example.com")
neg("sort -u", "sort -u names.txt > unique.txt")
neg("python -u", "python3 -u -m worker.main --queue orders")
# environment-style assignments in free text
SS, SP = L("secret_setting"), S
pos("env DB_PASSWORD", "DB_PASSWORD=hunter2 ./run.sh", f"DB_PASSWORD={SS} ./run.sh")
pos(
    "env AWS_SECRET_ACCESS_KEY",
    f"export AWS_SECRET_ACCESS_KEY={AWS_EXAMPLE_SECRET}",
    f"export AWS_SECRET_ACCESS_KEY={SS}",
)
pos("yaml aws_secret_access_key", f"aws_secret_access_key: {AWS_EXAMPLE_SECRET}", f"aws_secret_access_key: {SS}")
pos(
    "breadcrumb password:", "retrying login, password: Tr0ub4dor&3 user=bob", f"retrying login, password: {SS} user=bob"
)
# A name that is also a query parameter name: secret_param, listed first, wins; the value goes either way.
pos("env API_KEY hex", f"API_KEY={HEX32}", f"API_KEY={SP}")
pos("header api-key hex", f"api-key: {HEX32}", f"api-key: {SS}")
pos(
    "connection string",
    "Server=db;User Id=app;Password=S3cret!;Database=orders",
    f"Server=db;User Id=app;Password={SP};Database=orders",
)
pos("x-signature header", "X-Signature: t=1700000000,v1=5257a869e7ecebeda32affa62cdca3fa", f"X-Signature: {SS}")
pos(
    "x-hub-signature-256 header",
    "X-Hub-Signature-256: sha256=757107ea0eb2509fc211221cce984b8a37570b6d7586c22c46f4379c8b043e17",
    f"X-Hub-Signature-256: {SS}",
)
pos("passphrase setting", "ssh passphrase: correct-horse-battery", f"ssh passphrase: {SS}")
pos("ssh_key setting", "SSH_KEY=/home/app/.ssh/id_ed25519", f"SSH_KEY={SS}")
pos("token setting with scheme", "X-Auth-Token: Bearer abc123def456", "X-Auth-Token: Bearer " + L("bearer"))
neg("setting-like prose", "monkey: banana, keyboard=us, public_key: none")
neg("content type header", "Content-Type: application/json; charset=utf-8")
neg("keyerror with colon", "KeyError: 'api_key' not in settings")
neg("already scrubbed setting", f"DB_PASSWORD={SS}")
# signed URLs and OAuth parameters
OP = L("oauth_param")
pos(
    "s3 presigned url",
    "https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential=AKIAIOSFODNN7EXAMPLE%2F20240101"
    "%2Fus-east-1%2Fs3%2Faws4_request&X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600&X-Amz-SignedHeaders=host"
    "&X-Amz-Signature=fe5f80f77d5fa3beca038a248ff027d0445342fe2855ddc963176630326f1024",
    f"https://b.s3.amazonaws.com/k?X-Amz-Algorithm=AWS4-HMAC-SHA256&X-Amz-Credential={SP}&X-Amz-Date=20240101T000000Z"
    f"&X-Amz-Expires=3600&X-Amz-SignedHeaders=host&X-Amz-Signature={SP}",
)
pos(
    "gcs signed url",
    "https://storage.googleapis.com/b/o?X-Goog-Credential=svc%40proj.iam&X-Goog-Signature=0a1b2c3d4e",
    f"https://storage.googleapis.com/b/o?X-Goog-Credential={SP}&X-Goog-Signature={SP}",
)
pos(
    "oauth code",
    "GET https://app.example.com/callback?code=4/0AX4XfWh7sample&state=af0ifjsldkj",
    f"GET https://app.example.com/callback?code={OP}&state=af0ifjsldkj",
)
pos("query auth", "https://x.example.com/api?auth=abc123def&page=1", f"https://x.example.com/api?auth={OP}&page=1")
# "token_type" is a secret-looking name too (a key of that name is filtered as well), and an unquoted setting
# runs to the next space: "&" may be part of a password in an environment dump, so the rest of the query goes.
pos(
    "fragment access_token",
    "https://app/cb#access_token=abc.def&token_type=bearer&expires_in=3600 ok",
    f"https://app/cb#access_token={SP}&token_type={SS} ok",
)
pos("oauth1 params", "/cb?oauth_token=abc123&oauth_verifier=xyz789", f"/cb?oauth_token={SP}&oauth_verifier={SP}")
pos("session_token param", "https://x/?session_token=abc123&page=2", f"https://x/?session_token={SP}&page=2")
pos("otp param", "https://x/verify?otp=123456", f"https://x/verify?otp={OP}")
neg("exit code", "process exited with code=1 after 3 retries")
neg("status code", "HTTP status code=500 from upstream")
neg("code_style param", "https://x/?page=2&code_style=pep8")
neg("auth= in text", "auth=basic configured for the proxy")
neg("oauth state and scope", "https://x/authorize?state=xyz&scope=openid%20email&response_type=code")
neg("presign without secrets", "https://b.s3.amazonaws.com/k?X-Amz-Date=20240101T000000Z&X-Amz-Expires=3600")
# an AWS secret access key beside its key id (text), the detector for opaque tokens
AK, AS, HE = L("aws_access_key"), L("aws_secret_key"), L("high_entropy")
pos("aws pair in list repr", f"['{AWS_EXAMPLE_ID}', '{AWS_EXAMPLE_SECRET}']", f"['{AK}', '{AS}']")
pos("aws pair in text", f"login with {AWS_EXAMPLE_ID} / {AWS_EXAMPLE_SECRET} failed", f"login with {AK} / {AS} failed")
pos(
    "aws pair with label",
    f"key_id={AWS_EXAMPLE_ID} secret {AWS_EXAMPLE_SECRET}",
    f"key_id={AK} secret {AS}",
)
pos(
    "aws pair in json",
    f'{{"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "Value": "{AWS_EXAMPLE_SECRET}", "Expiration": "2026-12-02"}}',
    f'{{"AccessKeyId": "{AK}", "Value": "{AS}", "Expiration": "2026-12-02"}}',
)
pos(
    "aws secret in json under its name",
    f'{{"AccessKeyId": "ASIAY34FZKBOKMUTVV7A", "SecretAccessKey": "{AWS_SECRET}"}}',
    f'{{"AccessKeyId": "{AK}", "SecretAccessKey": "{A}"}}',
)
pos("opaque aws secret alone", f"secret was {AWS_SECRET} in a list", f"secret was {HE} in a list")
pos("opaque base62 32", f"session {TOKEN32} expired", f"session {HE} expired")
pos("opaque base62 48", f"[{TOKEN48}]", f"[{HE}]")
pos("opaque base62 64", TOKEN64, HE)
pos("opaque base64", f"blob {B64TOKEN} end", f"blob {HE} end")
pos("opaque base64url", f"t={B64URL}", f"t={HE}")
neg("uuid list", "7def14da-5943-488b-922b-a1b8d703ccb7, 0d1e3a57-9a41-4c0e-8b8e-2f1c7a0c9b3d")
neg("git sha full", "389e7eddb50c45e0baa2bfaf528f60ca12345678")
neg("sha256 hex", "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
neg("uppercase hex digest", "E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855")
neg(
    "image digest",
    "ghcr.io/acme/orders-worker:1.4.2@sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855",
)
neg("sri digest", "sha384-oqVuAfXRKap7fdgcCY5uykM6+R9GqQ8K/uxy9rx7HNQlGYl1kPzQho1wx4JwY8wC")
neg("long camel identifier", "AbstractSingletonProxyFactoryBeanImplementationFactory")
neg("long mixed path", "/Users/JohnSmith/Projects/MyApp/Sources/MyAppCore/Networking/APIClient.swift")
neg("python module path", "stackwatch.server.digest.normalize.normalize_event")
neg("site-packages path", "/srv/app/.venv/lib/python3.11/site-packages/sentry_sdk/integrations/logging.py")
neg("js module path", "webpack-internal:///./node_modules/@babel/runtime/helpers/esm/asyncToGenerator.js")
neg("minified identifiers", "at e.exports.t.default (main.8f3a9c1b.js:1:2345) at n.a.r")
neg("itanium mangled", "_ZN7android14AndroidRuntime8startRegEP7_JNIEnv")
neg("swift mangled", "$s10Foundation4DataV15_RepresentationO22withUnsafeMutableBytesyxxSwys0E0FSRzlXXxsAEOlF")
neg("frame function", "InvalidMultipartContentTransferEncodingDefect.__init__")
neg("base64 of prose", b64("The quick brown fox jumps over the lazy dog again"))
neg("base64 of json", b64('{"user": "bob", "step": 3, "ok": true, "region": "eu-west-1"}'))
neg("ssh public key", "ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOMqqnkVzrm0SdG6UOoqKLsabgH5C9okWi0dh2l9GKJl ops@host")
neg("url without secrets", "https://cdn.example.com/assets/AppShell-3f2a9c1b.js?v=20261202&lang=en")
neg("k8s pod name", "orders-worker-7d4b9c8f6-x2v9k restarted")
neg("timestamps", "2026-11-28T16:56:34.776662Z 1732812994.776662 20261128T165634Z")
neg("order numbers", "ORD-2026-000123 INV2026000123 PO-77-1234-5678")
neg("english sentence", "Retrying the webhook delivery for the customer account after the upstream timeout")
# card numbers separated by dots
pos("visa dots", "4111.1111.1111.1111", C)
pos("mastercard dots", "card 5555.5555.5555.4444 declined", f"card {C} declined")
neg("dotted number not grouped", "4111.111111111111")
neg("float timestamp", "at 4732812994.776662123 seconds")
# base64 that decodes to a secret
pos(
    "basic auth without header name",
    "sent Basic dXNlcjpodW50ZXIy upstream",
    "sent Basic " + L("basic_auth") + " upstream",
)
pos("base64 of password=", "payload " + b64("password=hunter2"), "payload " + L("base64_secret"))
pos("base64 of pem key", b64(PEM), L("base64_secret"))
pos("base64 of json with key", b64('{"api_key": "sk_live_51HxYzSECRETTOKEN"}'), L("base64_secret"))
pos(
    "urlsafe base64 of token param",
    base64.urlsafe_b64encode(b"token=abcdef123456&user=bob??").decode(),
    L("base64_secret"),
)
neg("basic without credentials", "Basic dXNlcg== is not a pair")
neg("basic auth prose", "Basic authentication is disabled")
_gap_strings = cases[_first_gap:]

# --- keys: look-alike letters and missing words ------------------------------------------------------------------
_first_gap_keys = len(cases)
for k in [
    "p\u0430ssword", "\uff30\uff21\uff33\uff33\uff37\uff2f\uff32\uff24", "tok\u0435n", "\u0455ecret", "api\u200b_key",
    "pass\u00adword", "pa\u0073\u0301sword", "\u0430ccess_key", "ssh_key", "sshKey", "SSH-KEY", "pin", "user_pin",
    "pinCode", "PIN", "otp", "otp_code", "totp_seed", "hotp", "creds", "aws_creds", "x-signature",
    "X-Hub-Signature-256", "x-hub-signature",
]:  # fmt: skip
    key(f"key rule: {k}", k, "hunter2-value", F)
for k in ["pinned", "spinner", "pinyin", "opinion", "shipping", "option", "footprint", "hotpath", "credo"]:
    key(f"keep key: {k}", k, "plain-value-123", "plain-value-123")
key(
    "list pairing of aws key id and secret",
    "deploy",
    [AWS_EXAMPLE_ID, AWS_EXAMPLE_SECRET, "eu-west-1"],
    [AK, AS, "eu-west-1"],
)
key("list pairing, secret first", "deploy", [AWS_EXAMPLE_SECRET, AWS_EXAMPLE_ID], [AS, AK])
key("allow-listed key, aws pair", "trace_id", f"{AWS_EXAMPLE_ID} {AWS_EXAMPLE_SECRET}", f"{AK} {AS}")
key("allow-listed key, bearer", "tenant", "Bearer abcdef123456", "Bearer " + L("bearer"))
key("allow-listed key, opaque token", "component", TOKEN48, HE)
key("allow-listed key keeps plain values", "workflow_id", "wf_orders", "wf_orders")
for c in cases[_first_gap_keys:]:
    c["gap"] = True
for c in _gap_strings:
    c["gap"] = True


# --- whole events: keys that are secrets, the allow-list, a client's _meta ----------------------------------------
def event(name: str, given: dict[str, Any], expected: dict[str, Any], secrets: list[str], gap: bool = True) -> None:
    case = {"name": name, "input": {"event": given}, "expected": expected, "secrets": secrets}
    if gap:
        case["gap"] = True
    cases.append(case)


GT = L("github_token")
event(
    "secret as a dict key",
    {"extra": {"owners": {GHP: "alice", "count": 2}}},
    {
        "extra": {"owners": {GT: F, "count": 2}},
        # The new key decides the key rules for its value: "[Filtered:github_token]" holds "token".
        "_meta": {
            "extra": {"owners": {GT: {"": {"rem": [["github_token", "k", 0, len(GT)], ["token", "x"]], "len": 5}}}}
        },
    },
    [GHP],
)
event(
    "secret as a tag key",
    {"tags": {"sk_live_51HxYzSECRETTOKEN": "1", "region": "eu"}},
    {
        "tags": {L("stripe_key"): F, "region": "eu"},
        # No key rule matches "[Filtered:stripe_key]": the value goes by the rule that replaced the key.
        "_meta": {
            "tags": {
                L("stripe_key"): {
                    "": {"rem": [["stripe_key", "k", 0, len(L("stripe_key"))], ["stripe_key", "x"]], "len": 1}
                }
            }
        },
    },
    ["sk_live_51HxYzSECRETTOKEN"],
)
event(
    "two secret keys stay distinct",
    {"extra": {GHP: 1, GHP2: 2}},
    {
        "extra": {GT: F, GT + " #2": F},
        "_meta": {
            "extra": {
                GT + " #2": {"": {"rem": [["github_token", "k", 0, len(GT)], ["token", "x"]]}},
                GT: {"": {"rem": [["github_token", "k", 0, len(GT)], ["token", "x"]]}},
            }
        },
    },
    [GHP, GHP2],
)
event(
    "a replaced key never takes a key that exists",
    {"extra": {GHP: 1, GT: "kept"}},
    {
        "extra": {GT + " #2": F, GT: F},
        "_meta": {
            "extra": {
                GT: {"": {"rem": [["token", "x"]], "len": 4}},
                GT + " #2": {"": {"rem": [["github_token", "k", 0, len(GT)], ["token", "x"]]}},
            }
        },
    },
    [GHP],
)
event(
    "key with a secret inside",
    {"extra": {"token=abc123": "v"}},
    {
        "extra": {f"token={S}": F},
        # Key rules read the key as stored: "secret" (of the label) comes before "token" in the table.
        "_meta": {
            "extra": {f"token={S}": {"": {"rem": [["secret_param", "k", 6, 6 + len(S)], ["secret", "x"]], "len": 1}}}
        },
    },
    [],
)
event(
    "opaque token as a tag key",
    {"tags": {TOKEN48: "seen"}},
    {
        "tags": {HE: F},
        "_meta": {"tags": {HE: {"": {"rem": [["high_entropy", "k", 0, len(HE)], ["high_entropy", "x"]], "len": 4}}}},
    },
    [TOKEN48],
)
event(
    "card number as a key",
    {"user": {"data": {"4111111111111111": "visa"}}},
    {
        "user": {"data": {C: F}},
        "_meta": {
            "user": {"data": {C: {"": {"rem": [["card_number", "k", 0, len(C)], ["cardnumber", "x"]], "len": 4}}}}
        },
    },
    ["4111111111111111"],
)
event(
    "pair list key holding a secret",
    {"request": {"headers": [[GHP, "x1"], ["Accept", "*/*"]]}},
    {
        "request": {"headers": [[GT, F], ["Accept", "*/*"]]},
        "_meta": {
            "request": {
                "headers": {
                    "0": {
                        "1": {"": {"rem": [["token", "x"]], "len": 2}},
                        "0": {"": {"rem": [["github_token", "s", 0, len(GT)]], "len": len(GHP)}},
                    }
                }
            }
        },
    },
    [GHP],
)
event(
    "allow-listed tag values get value rules",
    {"tags": {"trace_id": "Bearer abcdef123456", "run_id": "run_7"}},
    {
        "tags": {"trace_id": "Bearer " + L("bearer"), "run_id": "run_7"},
        "_meta": {"tags": {"trace_id": {"": {"rem": [["bearer", "s", 7, 7 + len(L("bearer"))]], "len": 19}}}},
    },
    ["abcdef123456"],
)
event(
    "client _meta keeps only well-formed remarks",
    {
        "message": "ok",
        "_meta": {
            "message": {
                "": {
                    "val": "hunter2-original",
                    "err": [["invalid", {"value": "hunter2-original"}]],
                    "rem": [["!config", "x"]],
                }
            },
            "extra": {GHP: {"": {"rem": [["!config", "x"]]}}},
            "tags": {
                "t": {
                    "": {
                        "rem": [
                            ["a rule with spaces", "x"],
                            ["sk_live_51HxYzSECRETTOKEN", "x"],
                            ["ok", "q"],
                            ["ok", "s", -1, 3],
                            ["ok", "s", 1],
                            "hunter2-original",
                        ],
                        "len": "12",
                    }
                }
            },
            "contexts": "hunter2-original",
        },
    },
    {"message": "ok", "_meta": {"message": {"": {"rem": [["!config", "x"]]}}}},
    ["hunter2-original", GHP, "sk_live_51HxYzSECRETTOKEN"],
)
event(
    "client _meta of a scrubbed event is kept as it is",
    {
        "extra": {"password": F},
        "_meta": {
            "extra": {
                "password": {"": {"rem": [["password", "x"]], "len": 8}},
                "url": {"": {"rem": [["secret_param", "s", 6, 29]], "len": 12}},
            }
        },
    },
    {
        "extra": {"password": F},
        "_meta": {
            "extra": {
                "password": {"": {"rem": [["password", "x"]], "len": 8}},
                "url": {"": {"rem": [["secret_param", "s", 6, 29]], "len": 12}},
            }
        },
    },
    [],
)
event(
    "logging arguments: key id and secret",
    {
        "logentry": {
            "message": "login with %s and %s failed",
            "params": [AWS_EXAMPLE_ID, AWS_SECRET],
            "formatted": f"login with {AWS_EXAMPLE_ID} and {AWS_SECRET} failed",
        }
    },
    {
        # Each parameter alone: the secret is an opaque token; in the message it is the one beside the key id.
        "logentry": {
            "message": "login with %s and %s failed",
            "params": [AK, HE],
            "formatted": f"login with {AK} and {AS} failed",
        },
        "_meta": {
            "logentry": {
                "params": {
                    "1": {"": {"rem": [["high_entropy", "s", 0, len(HE)]], "len": 40}},
                    "0": {"": {"rem": [["aws_access_key", "s", 0, len(AK)]], "len": 20}},
                },
                "formatted": {
                    "": {
                        "rem": [
                            ["aws_access_key", "s", 11, 11 + len(AK)],
                            ["aws_secret_key", "s", 16 + len(AK), 16 + len(AK) + len(AS)],
                        ],
                        "len": len(f"login with {AWS_EXAMPLE_ID} and {AWS_SECRET} failed"),
                    }
                },
            }
        },
    },
    [AWS_EXAMPLE_ID, AWS_SECRET],
)

# --- what Python's regular expressions and strings mean, which the JavaScript engine must match ------------------
# Offsets and lengths in _meta count code points (Python's str), not UTF-16 units.
event(
    "offsets count code points (characters outside the BMP)",
    {"message": "\U0001f511 token=abc123 \U0001f44d", "extra": {"password": "\U0001f511\U0001f511\U0001f511"}},
    {
        "message": "\U0001f511 token=" + L("secret_param") + " \U0001f44d",
        "extra": {"password": F},
        "_meta": {
            "message": {
                "": {
                    "rem": [
                        [
                            "secret_param",
                            "s",
                            len("\U0001f511 token="),
                            len("\U0001f511 token=") + len(L("secret_param")),
                        ]
                    ],
                    "len": len("\U0001f511 token=abc123 \U0001f44d"),
                }
            },
            "extra": {"password": {"": {"rem": [["password", "x"]], "len": 3}}},
        },
    },
    ["abc123"],
    gap=False,
)
event(
    "client _meta: a remark kind that is not a string is dropped",
    {
        "message": "ok",
        "_meta": {"message": {"": {"rem": [["!config", ["x"]], ["!config", {"k": 1}], ["!config", "x"]]}}},
    },
    {"message": "ok", "_meta": {"message": {"": {"rem": [["!config", "x"]]}}}},
    [],
    gap=False,
)
# \b and \w are Unicode (a letter before "Bearer" is a letter whatever its script), \s is Python's set of spaces
# (the information separators U+001C-U+001F are spaces, U+FEFF is not), and under (?i) "i" also matches "ı".
neg("bearer glued to a non-ASCII letter", "\u00e9Bearer abcdef123456")
neg("a zero-width no-break space is no space", "Bearer\ufeffabcdef123456")
pos("an information separator is a space", "Bearer\x1fabcdef123456", "Bearer\x1f" + L("bearer"))
pos("a dotless i in a parameter name", "ap\u0131_key=abc123def", "ap\u0131_key=" + L("secret_param"))

# --- the result scrubs to itself: a label opens no match that the replaced text kept closed ---------------------
# A random run glued to a setting: before, the run ends in "=" and the value, so it is no candidate; the label that
# replaces the value must not end it either ("[" is no end of a base64 run), or scrubbing the result would change it.
RUN = "LQGjFPewaoaZROZ6mAS4NeNngxeJZWoNyZ8Y69XSextD03iefzurQCRT5QEkSm32PLygKez7oncuaWDKeiSD3rUz34kqNDB"
pos(
    "a label ends no base64 run",
    RUN + "_PASSWORD=136gA69PGNijBLPY4wiVNl ./run.sh",
    RUN + "_PASSWORD=" + L("secret_setting") + " ./run.sh",
)
# An IPv6 address right behind an IBAN: "...47::1" holds none (a digit before the colons), "[Filtered:iban]::1"
# does. What a replacement lets a rule match is replaced in the same scrub.
cases.append(
    {
        "name": "a match that a replacement opens is made in the same scrub",
        "input": "x NO9386011117947::1 y",
        "expected": "x " + L("iban") + L("ipv6") + " y",
        "secrets": ["NO9386011117947", "::1"],
        "options": {"scrub_ips": True},
    }
)

if __name__ == "__main__":
    names = [c["name"] for c in cases]
    assert len(names) == len(set(names)), "duplicate vector names"
    out = Path(__file__).with_name("scrub.json")
    out.write_text(json.dumps(cases, indent=1, ensure_ascii=False) + "\n", encoding="utf-8")
    negatives = sum(c["input"] == c["expected"] for c in cases)
    gaps = [c for c in cases if c.get("gap")]
    gap_negatives = sum(c["input"] == c["expected"] for c in gaps)
    print(
        f"{len(cases)} vectors ({len(cases) - negatives} positive, {negatives} negative; of them for the audit's gaps"
        f" {len(gaps) - gap_negatives} positive, {gap_negatives} negative) -> {out}"
    )
