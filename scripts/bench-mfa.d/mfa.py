"""MFA requests timed against a running Galley (scripts/bench-mfa starts it).

Usage: mfa.py URL ANON_KEY SERVICE_KEY USERS CONCURRENCY
Standard library only. The TOTP code is RFC 6238's (SHA-1, six digits, 30 s), computed
here as an authenticator app does.
"""

import base64
import hashlib
import hmac
import json
import struct
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor

URL, ANON, SERVICE, USERS, CONCURRENCY = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5])
PASSWORD = "correct horse battery staple"


def call(method, path, body=None, token=None):
    headers = {"apikey": ANON, "content-type": "application/json"}
    if token:
        headers["authorization"] = f"Bearer {token}"
    data = json.dumps(body).encode() if body is not None else None
    request = urllib.request.Request(URL + path, data=data, method=method, headers=headers)
    started = time.perf_counter()
    with urllib.request.urlopen(request, timeout=30) as response:
        answer = json.loads(response.read() or b"null")
        status = response.status
    elapsed = time.perf_counter() - started
    if status != 200:
        raise RuntimeError(f"{method} {path}: {status}")
    return answer, elapsed


def totp(secret, at):
    key = base64.b32decode(secret + "=" * (-len(secret) % 8))
    digest = hmac.new(key, struct.pack(">Q", int(at) // 30), hashlib.sha1).digest()
    offset = digest[-1] & 0x0F
    code = struct.unpack(">I", digest[offset : offset + 4])[0] & 0x7FFFFFFF
    return f"{code % 1_000_000:06d}"


def prepare(n):
    email = f"mfa-{n}-{time.time_ns()}@example.com"
    call("POST", "/auth/v1/admin/users", {"email": email, "password": PASSWORD, "email_confirm": True}, SERVICE)
    session, login = call("POST", "/auth/v1/token?grant_type=password", {"email": email, "password": PASSWORD})
    token = session["access_token"]
    factor, _ = call("POST", "/auth/v1/factors", {"factor_type": "totp", "friendly_name": "bench"}, token)
    return token, factor["id"], factor["totp"]["secret"], login


def measure(prepared):
    token, factor, secret, _ = prepared
    challenge, challenge_s = call("POST", f"/auth/v1/factors/{factor}/challenge", {}, token)
    session, verify_s = call(
        "POST", f"/auth/v1/factors/{factor}/verify", {"challenge_id": challenge["id"], "code": totp(secret, time.time())}, token
    )
    claims = json.loads(base64.urlsafe_b64decode(session["access_token"].split(".")[1] + "=="))
    if claims["aal"] != "aal2":
        raise RuntimeError("verify did not raise the session to aal2")
    return challenge_s, verify_s


def percentiles(samples):
    ordered = sorted(samples)
    pick = lambda q: ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000
    return f"p50 {pick(0.50):7.2f} ms   p95 {pick(0.95):7.2f} ms   p99 {pick(0.99):7.2f} ms   max {ordered[-1] * 1000:7.2f} ms"


with ThreadPoolExecutor(CONCURRENCY) as pool:
    prepared = list(pool.map(prepare, range(USERS)))
    started = time.perf_counter()
    timed = list(pool.map(measure, prepared))
    wall = time.perf_counter() - started

print(f"{USERS} users, {CONCURRENCY} concurrent clients; each: challenge, then verify (once per factor)")
print(f"password grant (for scale)  {percentiles([p[3] for p in prepared])}")
print(f"challenge                   {percentiles([t[0] for t in timed])}")
print(f"verify                      {percentiles([t[1] for t in timed])}")
print(f"challenge + verify pairs per second over the run: {USERS / wall:.1f}")
