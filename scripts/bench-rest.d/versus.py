#!/usr/bin/env python3
"""Galley and PocketBase side by side, for scripts/bench-rest (VERSUS=pocketbase).

Both serve the same fixture: a public table (Galley `pub_items` with public select and
insert rules; PocketBase collection `items` with empty list, view and create rules) and an
owner-only one (Galley `items` from bench-rest, owner select rule; PocketBase `owned`,
`owner = @request.auth.id`), ROWS rows each, owned by one user whose token signs the
owner-only requests; USERS accounts with one password for logins. Every workload is first
requested once on each side and refused unless the answer is right; then both are loaded
with wrk in alternating slices (Galley then PocketBase, then the other way round), so the
two see the same noise. Throughput counts the answers without an error status (none of 400
or more; the exact status was checked first) over the slices' time; p50 and p99 are the medians over the slices; CPU per request is each process's CPU time
(Galley, its PostgreSQL cluster: the postmaster, its children and the children it reaped;
PocketBase) over the slices divided by the requests answered. For the point workloads the
PostgreSQL floor is measured too: pgbench replaying the transaction Galley ran (captured
by bench-rest), pipelined in one round trip, and PostgreSQL's CPU per transaction then.
RSS of both processes is sampled every 0.5 s: idle after the fixture, the peak during the
signup and login runs, and 60 s after them. wrk's own CPU per request is reported too: it
shares the two cores with the system it loads.
"""

import argparse
import json
import os
import re
import resource
import statistics
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request

TICKS = os.sysconf("SC_CLK_TCK")
PASSWORD = "bench-password-1234"  # as in versus.lua
PB_ADMIN = ("bench-admin@example.com", "bench-admin-password-1234")


def say(*parts):
    print("bench-rest:", *parts, file=sys.stderr, flush=True)


def fail(message):
    say(message)
    sys.exit(1)


def http(method, url, body=None, headers=None, raw=False):
    data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body).encode())
    request = urllib.request.Request(url, data=data, method=method)
    request.add_header("content-type", "application/json")
    for key, value in (headers or {}).items():
        request.add_header(key, value)
    try:
        with urllib.request.urlopen(request, timeout=120) as response:
            text = response.read()
            return response.status, dict(response.headers), (text if raw else json.loads(text or b"null"))
    except urllib.error.HTTPError as err:
        text = err.read()
        try:
            return err.code, dict(err.headers), json.loads(text or b"null")
        except ValueError:
            return err.code, dict(err.headers), text


def expect(what, status, wanted, body):
    if status != wanted:
        fail(f"{what}: HTTP {status}, expected {wanted}: {str(body)[:400]}")
    return body


# --- processes: CPU and memory ---------------------------------------------------------

def proc_ticks(pid, children=False):
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    ticks = int(fields[11]) + int(fields[12])  # utime, stime
    if children:
        ticks += int(fields[13]) + int(fields[14])  # cutime, cstime: children reaped
    return ticks


def cluster_ticks(postmaster):
    total = proc_ticks(postmaster, children=True)
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = open(f"/proc/{entry}/stat").read().rsplit(")", 1)[1].split()
            if int(stat[1]) == postmaster:
                total += int(stat[11]) + int(stat[12])
        except (OSError, IndexError, ValueError):
            pass
    return total


def rss_kib(pid):
    for line in open(f"/proc/{pid}/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    return 0


class Sampler(threading.Thread):
    """RSS of both processes every 0.5 s, with the phase it was taken in."""

    def __init__(self, pids):
        super().__init__(daemon=True)
        self.pids = pids
        self.phase = "idle"
        self.samples = []  # (t, phase, {side: kib})
        self.stop = False

    def run(self):
        start = time.time()
        while not self.stop:
            try:
                self.samples.append((time.time() - start, self.phase,
                                     {side: rss_kib(pid) for side, pid in self.pids.items()}))
            except OSError:
                pass
            time.sleep(0.5)

    def peak(self, side, phase):
        values = [s[2][side] for s in self.samples if s[1] == phase]
        return max(values) if values else 0

    def last(self, side):
        return self.samples[-1][2][side] if self.samples else 0


# --- the two systems ---------------------------------------------------------------------

class Galley:
    name = "galley"

    def __init__(self, a):
        self.base = a.galley
        self.anon = a.anon
        self.service = a.service
        self.user_jwt = a.user_jwt

    def admin(self, method, path, body, wanted):
        status, _, out = http(method, self.base + "/admin/v1" + path, body,
                              {"authorization": "Bearer " + self.service})
        return expect(f"galley {method} {path}", status, wanted, out)

    def setup(self, rows, users, work):
        say("galley: the public table and its rows, accounts")
        self.admin("POST", "/tables", {"name": "pub_items", "primary_key": "bigint", "columns": [
            {"name": "name", "type": "text", "nullable": False},
            {"name": "price", "type": "integer", "nullable": False},
            {"name": "created_at", "type": "timestamptz", "nullable": False,
             "default": {"expression": "now()"}}]}, 201)
        self.admin("PUT", "/tables/pub_items/rules",
                   {"select": {"preset": "public"}, "insert": {"preset": "public"}}, 200)
        for start in range(1, rows + 1, 1000):
            batch = [{"name": f"item {n}", "price": (n * 7919) % 10000}
                     for n in range(start, min(start + 1000, rows + 1))]
            status, _, out = http("POST", self.base + "/rest/v1/pub_items", batch,
                                  {"authorization": "Bearer " + self.service, "apikey": self.anon,
                                   "prefer": "return=minimal"})
            expect("galley rows", status, 201, out)
        with open(f"{work}/galley-pub-ids", "w") as f:
            f.write("\n".join(str(n) for n in range(1, rows + 1)) + "\n")
        with open(f"{work}/galley-owned-ids", "w") as f:
            f.write("\n".join(str(n) for n in range(1, rows + 1)) + "\n")
        emails = [f"login-{n}@example.com" for n in range(users)]
        for email in emails:
            status, _, out = http("POST", self.base + "/auth/v1/admin/users",
                                  {"email": email, "password": PASSWORD, "email_confirm": True},
                                  {"authorization": "Bearer " + self.service, "apikey": self.service})
            expect("galley account", status, 200, out)
        with open(f"{work}/galley-emails", "w") as f:
            f.write("\n".join(emails) + "\n")

    def workloads(self, work, rows):
        anon = ["-H", "apikey: " + self.anon]
        user = ["-H", "apikey: " + self.anon, "-H", "Authorization: Bearer " + self.user_jwt]
        json_h = ["-H", "Content-Type: application/json"]
        probe = rows // 2
        return {
            "get-by-id": dict(headers=anon, path=f"/rest/v1/pub_items?id=eq.{probe}",
                              check=lambda b, h: len(b) == 1 and b[0]["id"] == probe,
                              lua=["ids", f"{work}/galley-pub-ids", "/rest/v1/pub_items?id=eq."]),
            "get-by-id-owner": dict(headers=user, path=f"/rest/v1/items?id=eq.{probe}",
                                    check=lambda b, h: len(b) == 1 and b[0]["id"] == probe,
                                    lua=["ids", f"{work}/galley-owned-ids", "/rest/v1/items?id=eq."]),
            "list-20": dict(headers=anon, path="/rest/v1/pub_items?select=*&limit=20",
                            check=lambda b, h: len(b) == 20),
            "list-20-count": dict(headers=anon + ["-H", "Prefer: count=exact"],
                                  path="/rest/v1/pub_items?select=*&limit=20", status=206,
                                  check=lambda b, h: len(b) == 20
                                  and int(h.get("content-range", "0-19/0").split("/")[1]) >= rows),
            "filter-range": dict(headers=anon, path="/rest/v1/pub_items?price=gte.100&price=lt.5000&limit=20",
                                 check=lambda b, h: len(b) == 20
                                 and all(100 <= r["price"] < 5000 for r in b)),
            "insert": dict(headers=anon + json_h + ["-H", "Prefer: return=representation"],
                           path="/rest/v1/pub_items", status=201, body='{"name": "bench", "price": 42}',
                           check=lambda b, h: len(b) == 1 and b[0]["name"] == "bench",
                           lua=["post", '{"name": "bench", "price": 42}']),
            "signup": dict(headers=anon + json_h, path="/auth/v1/signup",
                           body=json.dumps({"email": "probe-signup@example.com", "password": PASSWORD}),
                           check=lambda b, h: b.get("user", {}).get("email") == "probe-signup@example.com",
                           lua=["signup", "galley"]),
            "login": dict(headers=anon + json_h, path="/auth/v1/token?grant_type=password",
                          body=json.dumps({"email": "login-0@example.com", "password": PASSWORD}),
                          check=lambda b, h: "access_token" in b,
                          lua=["login", "galley", f"{work}/galley-emails"]),
        }


class PocketBase:
    name = "pocketbase"

    def __init__(self, binary, port, work):
        self.binary = binary
        self.base = f"http://127.0.0.1:{port}"
        self.port = port
        self.dir = f"{work}/pb"
        self.token = None
        self.user_token = None
        self.process = None

    def start(self):
        os.makedirs(self.dir, exist_ok=True)
        subprocess.run([self.binary, "superuser", "upsert", *PB_ADMIN, "--dir", self.dir],
                       check=True, stdout=subprocess.DEVNULL)
        self.log = open(f"{self.dir}/../pocketbase.log", "w")
        self.process = subprocess.Popen(
            [self.binary, "serve", "--http", f"127.0.0.1:{self.port}", "--dir", self.dir],
            stdout=self.log, stderr=subprocess.STDOUT)
        for _ in range(300):
            try:
                if http("GET", self.base + "/api/health")[0] == 200:
                    break
            except OSError:
                pass
            time.sleep(0.1)
        else:
            fail("pocketbase did not start")
        status, _, out = http("POST", self.base + "/api/collections/_superusers/auth-with-password",
                              {"identity": PB_ADMIN[0], "password": PB_ADMIN[1]})
        self.token = expect("pocketbase superuser", status, 200, out)["token"]

    def api(self, method, path, body, wanted, token=None):
        status, _, out = http(method, self.base + path, body,
                              {"authorization": token or self.token})
        return expect(f"pocketbase {method} {path}", status, wanted, out)

    def setup(self, rows, users, work):
        say("pocketbase: collections, rows, accounts")
        self.api("PATCH", "/api/settings", {"batch": {"enabled": True, "maxRequests": 1000,
                                                      "timeout": 60, "maxBodySize": 0}}, 200)
        fields = [{"name": "name", "type": "text", "required": True},
                  {"name": "price", "type": "number"},
                  {"name": "created", "type": "autodate", "onCreate": True}]
        self.api("POST", "/api/collections", {"name": "items", "type": "base", "listRule": "",
                                              "viewRule": "", "createRule": "", "fields": fields}, 200)
        # The owner of the owner-only rows, signed in like the Galley user.
        owner = self.api("POST", "/api/collections/users/records",
                         {"email": "owner@example.com", "password": PASSWORD,
                          "passwordConfirm": PASSWORD}, 200)
        self.user_token = self.api("POST", "/api/collections/users/auth-with-password",
                                   {"identity": "owner@example.com", "password": PASSWORD}, 200)["token"]
        users_id = self.api("GET", "/api/collections/users", None, 200)["id"]
        rule = "owner = @request.auth.id"
        self.api("POST", "/api/collections", {
            "name": "owned", "type": "base", "listRule": rule, "viewRule": rule,
            "fields": fields + [{"name": "owner", "type": "relation", "collectionId": users_id,
                                 "maxSelect": 1, "required": True}]}, 200)
        for collection, extra in (("items", {}), ("owned", {"owner": owner["id"]})):
            for start in range(1, rows + 1, 1000):
                requests = [{"method": "POST", "url": f"/api/collections/{collection}/records",
                             "body": {"name": f"item {n}", "price": (n * 7919) % 10000, **extra}}
                            for n in range(start, min(start + 1000, rows + 1))]
                self.api("POST", "/api/batch", {"requests": requests}, 200)
            ids = []
            page = 1
            while True:
                out = self.api("GET", f"/api/collections/{collection}/records?perPage=1000&page={page}"
                               "&fields=id&skipTotal=1", None, 200)
                ids += [r["id"] for r in out["items"]]
                if len(out["items"]) < 1000:
                    break
                page += 1
            if len(ids) != rows:
                fail(f"pocketbase {collection}: {len(ids)} rows, expected {rows}")
            with open(f"{work}/pb-{collection}-ids", "w") as f:
                f.write("\n".join(ids) + "\n")
        emails = [f"login-{n}@example.com" for n in range(users)]
        for email in emails:
            self.api("POST", "/api/collections/users/records",
                     {"email": email, "password": PASSWORD, "passwordConfirm": PASSWORD}, 200)
        with open(f"{work}/pb-emails", "w") as f:
            f.write("\n".join(emails) + "\n")
        self.probe = open(f"{work}/pb-items-ids").readline().strip()
        self.probe_owned = open(f"{work}/pb-owned-ids").readline().strip()

    def workloads(self, work, rows):
        json_h = ["-H", "Content-Type: application/json"]
        user = ["-H", "Authorization: " + self.user_token]
        probe, owned = self.probe, self.probe_owned
        return {
            "get-by-id": dict(path=f"/api/collections/items/records/{probe}",
                              check=lambda b, h: b["id"] == probe,
                              lua=["ids", f"{work}/pb-items-ids", "/api/collections/items/records/"]),
            "get-by-id-owner": dict(headers=user, path=f"/api/collections/owned/records/{owned}",
                                    check=lambda b, h: b["id"] == owned,
                                    lua=["ids", f"{work}/pb-owned-ids", "/api/collections/owned/records/"]),
            "list-20": dict(path="/api/collections/items/records?perPage=20&skipTotal=1",
                            check=lambda b, h: len(b["items"]) == 20),
            "list-20-count": dict(path="/api/collections/items/records?perPage=20",
                                  check=lambda b, h: len(b["items"]) == 20 and b["totalItems"] >= rows),
            "filter-range": dict(path="/api/collections/items/records?perPage=20&skipTotal=1"
                                 "&filter=(price%3E%3D100%26%26price%3C5000)",
                                 check=lambda b, h: len(b["items"]) == 20
                                 and all(100 <= r["price"] < 5000 for r in b["items"])),
            "insert": dict(headers=json_h, path="/api/collections/items/records",
                           body='{"name": "bench", "price": 42}',
                           check=lambda b, h: b["name"] == "bench",
                           lua=["post", '{"name": "bench", "price": 42}']),
            "signup": dict(headers=json_h, path="/api/collections/users/records",
                           body=json.dumps({"email": "probe-signup@example.com", "password": PASSWORD,
                                            "passwordConfirm": PASSWORD}),
                           # PocketBase hides the email from others unless emailVisibility.
                           check=lambda b, h: b.get("collectionName") == "users" and b.get("id"),
                           lua=["signup", "pocketbase"]),
            "login": dict(headers=json_h, path="/api/collections/users/auth-with-password",
                          body=json.dumps({"identity": "login-0@example.com", "password": PASSWORD}),
                          check=lambda b, h: "token" in b,
                          lua=["login", "pocketbase", f"{work}/pb-emails"]),
        }


# --- running -----------------------------------------------------------------------------

def check(system, name, w):
    headers = {}
    args = w.get("headers", [])
    for flag, value in zip(args[0::2], args[1::2]):
        key, _, val = value.partition(": ")
        headers[key.lower()] = val
    status, resp_headers, body = http("POST" if "body" in w else "GET", system.base + w["path"],
                                      w["body"].encode() if "body" in w else None, headers)
    lowered = {k.lower(): v for k, v in resp_headers.items()}
    wanted = w.get("status", 200)
    if status != wanted or not w["check"](body, lowered):
        fail(f"{system.name} {name}: HTTP {status} (expected {wanted}), answer not as expected: {str(body)[:400]}")


def runqueue_wait_ns(pid):
    """Nanoseconds the process's threads have spent runnable but waiting for a core."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/schedstat") as f:
                total += int(f.read().split()[1])
    except (OSError, ValueError, IndexError):
        pass
    return total


def run_wrk(system, w, conns, seconds, lua):
    command = ["wrk", "-t", "2", "-c", str(conns), "-d", f"{seconds}s", "--timeout", "5s", "-s", lua,
               *w.get("headers", []), system.base + w["path"], "--", *w.get("lua", ["fixed"])]
    spent = resource.getrusage(resource.RUSAGE_CHILDREN)
    run = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # wrk measures latency from its own clock: time it spent waiting for a core (the
    # machine's two cores are shared with both systems) counts as the server's. Sampled
    # while it runs (its threads are gone once it exits), so the report can say how much.
    waited = 0
    while run.poll() is None:
        waited = max(waited, runqueue_wait_ns(run.pid))
        time.sleep(0.1)
    stdout, stderr = run.communicate()
    lines = [l for l in stdout.strip().splitlines() if l.startswith("{")]
    if not lines:
        fail(f"wrk failed: {stdout[-400:]} {stderr[-400:]}")
    summary = json.loads(lines[-1])
    summary["client_wait_s"] = waited / 1e9
    # wrk's own CPU: it is waited for above, so its usage is now among the children's.
    done = resource.getrusage(resource.RUSAGE_CHILDREN)
    summary["client_cpu_s"] = (done.ru_utime + done.ru_stime) - (spent.ru_utime + spent.ru_stime)
    return summary


def measure(system, w, conns, seconds, lua, pids, others):
    before = {side: ticks() for side, ticks in pids.items()}
    others_before = sum(ticks() for ticks in others.values())
    summary = run_wrk(system, w, conns, seconds, lua)
    spent = {side: ticks() - before[side] for side, ticks in pids.items()}
    other = sum(ticks() for ticks in others.values()) - others_before
    # Answers with a status of 400 or more are among wrk's errors (report.lua).
    ok = summary["requests"] - summary["errors"]["status"]
    bad = {k: v for k, v in summary["errors"].items() if v}
    return {"ok": ok, "seconds": summary["duration_us"] / 1e6, "p50": summary["p50_us"] / 1000,
            "p99": summary["p99_us"] / 1000, "ticks": spent, "bad": bad, "other": other,
            "client_wait": summary["client_wait_s"], "client_cpu": summary["client_cpu_s"]}


def pgbench_floor(a, name, conns, seconds, pipeline=True):
    """pgbench replaying Galley's captured transaction in one pipelined round trip (or,
    without `pipeline`, a round trip and a Sync per statement, as Galley's driver sends), and
    PostgreSQL's CPU per transaction then: measured over a window inside the run (its
    connections made, not yet closing), transactions counted from pgbench's per-second
    progress lines in that window."""
    script = f"{a.out}/{name}.sql"
    if not os.path.exists(script):
        return None
    lines = [l for l in open(script).read().splitlines()
             if l.strip() and l not in ("\\startpipeline", "\\endpipeline")]
    statements = [l for l in lines if not l.startswith("\\set")]
    if not statements[0].startswith(("BEGIN", "START TRANSACTION")):
        # Galley ran it as an implicit transaction (one Sync); statement by statement it
        # needs a transaction block to keep its settings.
        statements = ["BEGIN;", *statements, "COMMIT;"] if not pipeline else statements
    pipelined = f"{a.out}/{name}.{'pipelined' if pipeline else 'synced'}.sql"
    with open(pipelined, "w") as f:
        f.write("\n".join([l for l in lines if l.startswith("\\set")]
                          + ["\\startpipeline"] * pipeline
                          + statements
                          + ["\\endpipeline"] * pipeline) + "\n")
    defines = []
    if os.path.exists(f"{a.out}/{name}.defines"):
        for line in open(f"{a.out}/{name}.defines").read().splitlines():
            defines += ["-D", line]
    lead = 2  # seconds before the window opens
    run = subprocess.Popen([f"{a.pg_bin}/pgbench", "-M", "prepared", "-n", "-c", str(conns), "-j", "2",
                            "-T", str(seconds + lead + 1), "-P", "1", "-f", pipelined,
                            "-D", f"rows={a.rows}", *defines, a.db_url],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    time.sleep(lead)
    before = cluster_ticks(a.postmaster_pid)
    time.sleep(seconds)
    spent = cluster_ticks(a.postmaster_pid) - before
    out, err = run.communicate()
    # "progress: 3.0 s, 1234.5 tps, ..." covers the second ending at 3.0 s.
    progress = {round(float(m.group(1))): float(m.group(2))
                for m in re.finditer(r"progress: ([0-9.]+) s, ([0-9.]+) tps", err + out)}
    done = sum(progress.get(t, 0.0) for t in range(lead + 1, lead + seconds + 1))
    if run.returncode != 0 or not done:
        say(f"pgbench {name}: {out[-300:]} {err[-300:]}")
        return None
    return {"tps": done / seconds, "pg_us": spent / TICKS * 1e6 / done}


def main():
    p = argparse.ArgumentParser()
    for flag in ("galley", "anon", "service", "user-jwt", "pocketbase", "work", "out", "db-url", "pg-bin",
                 "lua"):
        p.add_argument("--" + flag, required=True)
    p.add_argument("--galley-pid", type=int, required=True)
    p.add_argument("--postmaster-pid", type=int, required=True)
    p.add_argument("--pb-port", type=int, default=18768)
    p.add_argument("--rows", type=int, default=10000)
    p.add_argument("--users", type=int, default=200)
    p.add_argument("--connections", default="16 64")
    p.add_argument("--auth-connections", default="8")
    p.add_argument("--slices", type=int, default=3)
    p.add_argument("--slice", type=int, default=5)
    p.add_argument("--warmup", type=int, default=2)
    p.add_argument("--settle", type=float, default=1.0)
    p.add_argument("--after", type=int, default=60)
    # Inserts last among the table workloads: the rows they add would otherwise make the
    # counted lists that follow slower on both sides.
    p.add_argument("--workloads", default="get-by-id get-by-id-owner list-20 list-20-count "
                                          "filter-range insert signup login")
    a = p.parse_args()

    galley = Galley(a)
    pb = PocketBase(a.pocketbase, a.pb_port, a.work)
    pb.start()
    try:
        sampler = Sampler({"galley": a.galley_pid, "pocketbase": pb.process.pid})
        galley.setup(a.rows, a.users, a.work)
        pb.setup(a.rows, a.users, a.work)
        # The fixture's rows vacuumed and analysed now, so autovacuum does not do it on
        # its own schedule, in the middle of a slice (of either system).
        subprocess.run([f"{a.pg_bin}/psql", "-q", "-X", "-v", "ON_ERROR_STOP=1", "-c", "VACUUM ANALYZE",
                        a.db_url], check=True, stdout=subprocess.DEVNULL)
        sampler.start()
        time.sleep(3)
        idle = {side: rss_kib(pid) for side, pid in sampler.pids.items()}
        workloads = {s.name: s.workloads(a.work, a.rows) for s in (galley, pb)}
        names = a.workloads.split()
        for name in names:
            for system in (galley, pb):
                check(system, name, workloads[system.name][name])
        say("every workload answers as expected on both sides")
        ticks = {
            "galley": {"galley": lambda: proc_ticks(a.galley_pid),
                       "postgres": lambda: cluster_ticks(a.postmaster_pid)},
            "pocketbase": {"pocketbase": lambda: proc_ticks(pb.process.pid)},
        }
        results = []
        for name in names:
            auth = name in ("signup", "login")
            if auth:
                sampler.phase = "auth"
            for conns in map(int, (a.auth_connections if auth else a.connections).split()):
                runs = {"galley": [], "pocketbase": []}
                for system in (galley, pb):
                    run_wrk(system, workloads[system.name][name], conns, a.warmup, a.lua)
                for k in range(a.slices):
                    order = (galley, pb) if k % 2 == 0 else (pb, galley)
                    for system in order:
                        say(f"{name}, {conns} connections, slice {k + 1}/{a.slices}: {system.name}")
                        # What the other side still does after its own slice (a collector, a
                        # checkpoint) lands in this one: let it settle, and measure what is left.
                        time.sleep(a.settle)
                        other = "pocketbase" if system.name == "galley" else "galley"
                        runs[system.name].append(measure(system, workloads[system.name][name], conns,
                                                         a.slice, a.lua, ticks[system.name],
                                                         ticks[other]))
                row = {"workload": name, "conns": conns}
                for side, slices in runs.items():
                    ok = sum(s["ok"] for s in slices)
                    seconds = sum(s["seconds"] for s in slices)
                    cpu = {}
                    for part in ticks[side]:
                        cpu[part] = sum(s["ticks"][part] for s in slices) / TICKS * 1e6 / max(ok, 1)
                    bad = {}
                    for s in slices:
                        for k2, v in s["bad"].items():
                            bad[k2] = bad.get(k2, 0) + v
                    row[side] = {"rps": ok / seconds, "p50": statistics.median(s["p50"] for s in slices),
                                 "p99": statistics.median(s["p99"] for s in slices), "cpu_us": cpu, "bad": bad,
                                 # cores the other system used while this one was measured
                                 "other_cores": sum(s["other"] for s in slices) / TICKS / seconds,
                                 # seconds wrk's threads waited for a core, per second measured
                                 "client_wait": sum(s["client_wait"] for s in slices) / seconds,
                                 # wrk's CPU per answer
                                 "client_us": sum(s["client_cpu"] for s in slices) * 1e6 / max(ok, 1)}
                # The floor of the owner-rule transaction bench-rest captured (for the public
                # table's by-id too: the same statements but for the policy).
                captured = {"get-by-id": "get-by-id", "get-by-id-owner": "get-by-id",
                            "insert": "insert"}.get(name)
                if captured:
                    row["floor"] = pgbench_floor(a, captured, conns, a.slice)
                    row["synced"] = pgbench_floor(a, captured, conns, a.slice, pipeline=False)
                results.append(row)
                with open(f"{a.out}/versus.jsonl", "a") as f:
                    f.write(json.dumps(row) + "\n")
        sampler.phase = "after"
        say(f"idle for {a.after} s after the auth runs, sampling memory")
        time.sleep(a.after)
        after = {side: sampler.last(side) for side in sampler.pids}
        peak = {side: sampler.peak(side, "auth") for side in sampler.pids}
        sampler.stop = True
        with open(f"{a.out}/rss.tsv", "w") as f:
            f.write("seconds\tphase\tgalley_kib\tpocketbase_kib\n")
            for t, phase, values in sampler.samples:
                f.write(f"{t:.1f}\t{phase}\t{values['galley']}\t{values['pocketbase']}\n")
        report(results, idle, peak, after, a.after)
    finally:
        if pb.process:
            pb.process.terminate()
            pb.process.wait()


def report(results, idle, peak, after, after_s):
    head = ["workload", "conns", "Galley req/s", "PocketBase req/s", "ratio", "p50 ms G / PB",
            "p99 ms G / PB", "CPU µs/req Galley (galley + PG)", "PocketBase CPU µs/req",
            "PG µs/tx pgbench: pipelined / Sync each", "errors"]
    out = [head]
    for r in results:
        g, b = r["galley"], r["pocketbase"]
        floor, synced = r.get("floor"), r.get("synced")
        gcpu = g["cpu_us"]
        bad = {**{f"G {k}": v for k, v in g["bad"].items()}, **{f"PB {k}": v for k, v in b["bad"].items()}}
        out.append([r["workload"], str(r["conns"]), f"{g['rps']:.0f}", f"{b['rps']:.0f}",
                    f"{g['rps'] / b['rps']:.2f}×" if b["rps"] else "-",
                    f"{g['p50']:.1f} / {b['p50']:.1f}", f"{g['p99']:.1f} / {b['p99']:.1f}",
                    f"{gcpu['galley'] + gcpu['postgres']:.0f} ({gcpu['galley']:.0f} + {gcpu['postgres']:.0f})",
                    f"{b['cpu_us']['pocketbase']:.0f}",
                    (f"{floor['pg_us']:.0f} / " + (f"{synced['pg_us']:.0f}" if synced else "-"))
                    if floor else "-",
                    ", ".join(f"{k}: {v}" for k, v in bad.items()) or "none"])
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    for row in out:
        print("  ".join(cell.ljust(widths[i]) if i in (0, 10) else cell.rjust(widths[i])
                        for i, cell in enumerate(row)))
    print("wrk waiting for a core (its threads' runqueue seconds per second measured, counted "
          "in the latencies it reports), Galley / PocketBase: "
          + ", ".join(f"{r['workload']}/{r['conns']} {r['galley']['client_wait']:.2f} / "
                      f"{r['pocketbase']['client_wait']:.2f}" for r in results))
    print("wrk's own CPU µs per request, Galley / PocketBase (the two cores are shared with it): "
          + ", ".join(f"{r['workload']}/{r['conns']} {r['galley']['client_us']:.0f} / "
                      f"{r['pocketbase']['client_us']:.0f}" for r in results))
    busy = [f"{r['workload']}/{r['conns']} ({side}: {r[side]['other_cores']:.2f})" for r in results
            for side, other in (("galley", "pocketbase"), ("pocketbase", "galley"))
            if r[side].get("other_cores", 0) > 0.05]
    if busy:
        print("the other system was still busy (cores) during: " + ", ".join(busy))
    mib = lambda kib: f"{kib / 1024:.0f} MiB"
    for side in ("galley", "pocketbase"):
        print(f"{side} RSS: idle after the fixture {mib(idle[side])}; peak during signup/login "
              f"{mib(peak[side])}; {after_s} s after {mib(after[side])}")
    if any(r["galley"]["bad"] or r["pocketbase"]["bad"] for r in results):
        fail("some runs had errors: see the errors column")


if __name__ == "__main__":
    main()
