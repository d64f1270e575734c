"""Helpers for scripts/bench-rest (standard library only).

  jwt SECRET_FILE SUB                 print an HS256 user token (role authenticated, 1 h)
  check NAME STATUS EXPR CODE HEADERS BODY
                                      refuse a response whose status is not STATUS or whose
                                      body fails EXPR (Python, over b = parsed JSON body,
                                      h = lower-cased headers)
  capture LOG SCRIPT DEFINES [ID]     turn the last REST transaction in a slice of the
                                      PostgreSQL log (log_statement = all) into a pgbench
                                      script (one that ran as an implicit transaction, in
                                      one Sync, as a pipeline); its parameters become
                                      pgbench variables
                                      (`name=value` lines in DEFINES, for -D), the one whose
                                      value is ID becomes `:id` (set by `random(1, rows)`)
  wrk NAME CONNS STATUS JSON          one result line from wrk.lua's summary and the
                                      galley CPU time line after it
  pgbench NAME CONNS OUTPUT           one result line from pgbench's output
  table RESULTS                       print the results as a table
  perf-crates                         sum a flat `perf report` (stdin) by crate: top 15
"""

import base64
import hashlib
import hmac
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from tables import print_table  # noqa: E402


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt(secret_file, sub):
    # Galley signs with the secret file's text (trimmed) as the HMAC key.
    secret = open(secret_file).read().strip().encode()
    now = int(time.time())
    header = {"alg": "HS256", "typ": "JWT"}
    claims = {"sub": sub, "role": "authenticated", "aud": "authenticated",
              "iat": now, "exp": now + 3600}
    signing_input = b64url(json.dumps(header, separators=(",", ":")).encode()) + "." + \
        b64url(json.dumps(claims, separators=(",", ":")).encode())
    signature = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    print(signing_input + "." + b64url(signature))


def check(name, status, expr, code, headers_file, body_file):
    body_text = open(body_file).read()
    if code != status:
        sys.exit(f"bench-rest: {name}: expected HTTP {status}, got {code}: {body_text}")
    h = {}
    for line in open(headers_file):
        if ":" in line:
            key, value = line.split(":", 1)
            h[key.strip().lower()] = value.strip()
    b = json.loads(body_text)
    if not eval(expr, {}, {"b": b, "h": h}):  # the caller's own assertion
        sys.exit(f"bench-rest: {name}: HTTP {code} but `{expr}` is false; body: {body_text[:500]}")


ENTRY = re.compile(r"\[(\d+)\] (LOG|DETAIL):  (.*)")
PARAM = re.compile(r"\$(\d+) = (NULL|'(?:[^']|'')*')")


def capture(log_file, script_file, defines_file, id_value=None):
    # Each statement a backend ran, with its parameters, in log order.
    statements = []
    for line in open(log_file, errors="replace"):
        m = ENTRY.search(line)
        if not m:
            continue
        pid, kind, text = m.groups()
        if kind == "LOG" and text.startswith("statement: "):
            statements.append((pid, text[len("statement: "):], {}))
        elif kind == "LOG" and text.startswith("execute "):
            statements.append((pid, text.split(": ", 1)[1], {}))
        elif kind == "DETAIL" and text.startswith("parameters: ") and statements \
                and statements[-1][0] == pid:
            for number, value in PARAM.findall(text):
                statements[-1][2][number] = None if value == "NULL" else value[1:-1].replace("''", "'")
    # The request's transaction, by the backend that served it: from its last setup
    # (set_config of the role) to the statement after it, in a transaction of its own
    # (one Sync: replayed as one pgbench pipeline), or, when a BEGIN came first, from the
    # BEGIN to the COMMIT.
    setups = [i for i, s in enumerate(statements) if s[1].startswith("SELECT set_config('role'")]
    if not setups:
        sys.exit(f"bench-rest: no request transaction in {log_file}")
    setup = max(setups)
    pid = statements[setup][0]
    before = [s for s in statements[:setup] if s[0] == pid]
    explicit = bool(before) and before[-1][1].startswith(("START TRANSACTION", "BEGIN"))
    start = statements.index(before[-1]) if explicit else setup
    transaction = []
    for s in statements[start:]:
        if s[0] != pid:
            continue
        transaction.append(s)
        if (explicit and s[1] == "COMMIT") or (not explicit and len(transaction) == 2):
            break
    else:
        sys.exit(f"bench-rest: the request's transaction does not end in {log_file}")
    if not any("set_config('role'" in s[1] for s in transaction):
        sys.exit(f"bench-rest: the captured transaction sets no role: {transaction}")

    lines, defines, used_id = [], [], False
    if id_value is not None:
        lines.append("\\set id random(1, :rows)")
    for n, (_, sql, params) in enumerate(transaction):
        if "$$" in sql or "\n" in sql:
            sys.exit(f"bench-rest: cannot turn this statement into a pgbench line: {sql}")

        def variable(m, n=n, params=params):
            nonlocal used_id
            value = params[m.group(1)]
            if value is None:
                return "NULL::text"
            if id_value is not None and value == id_value:
                used_id = True
                return ":id::text"
            name = f"s{n}p{m.group(1)}"
            defines.append(f"{name}={value}")
            # Galley binds every parameter as text; so does this.
            return f":{name}::text"

        lines.append(re.sub(r"\$(\d+)", variable, sql) + ";")
    if not explicit:
        lines[len(lines) - len(transaction):len(lines) - len(transaction)] = ["\\startpipeline"]
        lines.append("\\endpipeline")
    if id_value is not None and not used_id:
        sys.exit(f"bench-rest: no parameter of the captured transaction is {id_value}")
    with open(script_file, "w") as out:
        out.write("\n".join(lines) + "\n")
    with open(defines_file, "w") as out:
        out.write("\n".join(defines) + ("\n" if defines else ""))


def wrk(name, conns, status, json_file):
    # wrk.lua's summary, then the galley process's CPU time over the run.
    s, cpu = [json.loads(line) for line in open(json_file).read().strip().splitlines()[-2:]]
    seconds = s["duration_us"] / 1e6
    # Answers with a status of 400 or more are among wrk's errors (report.lua); `status`,
    # the one expected, was checked before the run.
    ok = s["requests"] - s["errors"]["status"]
    bad = {k: v for k, v in s["errors"].items() if v}
    print(json.dumps({"workload": name, "conns": int(conns), "side": "galley",
                      "rps": ok / seconds, "p50_ms": s["p50_us"] / 1000,
                      "p99_ms": s["p99_us"] / 1000,
                      "cpu_cores": cpu["galley_cpu_ticks"] / cpu["ticks_per_s"] / seconds,
                      "bad": bad}))


def pgbench(name, conns, output_file):
    text = open(output_file).read()
    tps = re.search(r"tps = ([0-9.]+) \(without initial connection time\)", text)
    failed = re.search(r"number of failed transactions: (\d+)", text)
    latency = re.search(r"latency average = ([0-9.]+) ms", text)
    bad = {}
    if failed and int(failed.group(1)):
        bad["failed"] = int(failed.group(1))
    if not tps:
        bad["no result"] = 1
    print(json.dumps({"workload": name, "conns": int(conns), "side": "sql",
                      "tps": float(tps.group(1)) if tps else 0.0,
                      "avg_ms": float(latency.group(1)) if latency else None, "bad": bad}))


def table(results_file):
    rows = {}
    order = []
    for line in open(results_file):
        r = json.loads(line)
        key = (r["workload"], r["conns"])
        if key not in rows:
            rows[key] = {}
            order.append(key)
        rows[key][r["side"]] = r
    head = ["workload", "conns", "Galley req/s", "p99 ms", "SQL ceiling tx/s", "Galley/ceiling",
            "galley CPU", "errors"]
    out = [head]
    for key in order:
        g, s = rows[key].get("galley"), rows[key].get("sql")
        bad = {}
        if g:
            bad.update({f"galley {k}": v for k, v in g["bad"].items()})
        if s:
            bad.update({f"sql {k}": v for k, v in s["bad"].items()})
        out.append([
            key[0], str(key[1]),
            f"{g['rps']:.0f}" if g else "-",
            f"{g['p99_ms']:.1f}" if g else "-",
            f"{s['tps']:.0f}" if s else "-",
            f"{100 * g['rps'] / s['tps']:.0f} %" if g and s and s["tps"] else "-",
            f"{g['cpu_cores']:.2f} cores" if g else "-",
            ", ".join(f"{k}: {v}" for k, v in bad.items()) or "none",
        ])
    print_table(out, left=(0, 7))


def perf_crates():
    totals = {}
    for line in sys.stdin:
        m = re.match(r"\s*([0-9.]+)%\s.*?\[\.\]\s+(.*)", line)
        if not m:
            continue
        symbol = re.sub(r"^(dyn |impl |mut )", "", m.group(2).lstrip("<&*( "))
        crate = re.split(r"::|<| ", symbol)[0]
        totals[crate] = totals.get(crate, 0.0) + float(m.group(1))
    for crate, share in sorted(totals.items(), key=lambda kv: -kv[1])[:15]:
        print(f"{share:8.2f}%  {crate}")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"jwt": jwt, "check": check, "capture": capture, "wrk": wrk, "pgbench": pgbench,
     "table": table, "perf-crates": perf_crates}[command](*args)
