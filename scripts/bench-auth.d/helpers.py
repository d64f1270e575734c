"""Helpers for scripts/bench-auth (standard library only, but `hash`, which needs
argon2-cffi and runs in the script's own virtualenv).

  hash N                              time N argon2id hashes at Galley's cost (m = 19456 KiB,
                                      t = 2, p = 1; 16-byte salt, 32-byte hash) after one
                                      unmeasured; print {"cpu_ms", "wall_ms", "library"}
  users BASE SERVICE_KEY PREFIX N PASSWORD
                                      create users PREFIX<1..N>@example.com, confirmed,
                                      through POST /auth/v1/admin/users (8 at a time);
                                      refuse any answer but 200
  machine CORES GALLEY CLUSTER WRK BUSY TOTAL
                                      add where the machine's CPU went over a run (ticks in,
                                      cores out; other = busy - galley - cluster - wrk) to
                                      the result line on stdin
  table RESULTS HASH_JSON CORES       print the table (RESULTS: scripts/bench-rest.d/helpers.py
                                      `wrk` lines), the hash cost and the ceilings
"""

import json
import os
import sys
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "bench-rest.d"))
from tables import print_table  # noqa: E402

# PocketBase on the same machine (requests per second); the target is twice these.
REFERENCE = {"signup": 17, "login": 33}
NOTES = {
    "signup": "a new email each, 200 = session",
    "otp": "POST /otp, a new email each: account + queued mail, no SMTP",
    "login": "password grant over the created users",
    "get-by-id alone": "GET /rest/v1/<table>?id=eq.N, user JWT",
    "get-by-id + login storm": "same, while the storm below runs",
    "login storm": "password grant; started before and ended after the get-by-id run",
    "get-by-id + idle busy loops": "control: same, while one SCHED_IDLE busy loop per core runs",
}


def base_name(workload):
    """A workload's name without its round ("get-by-id alone #2" -> "get-by-id alone")."""
    return workload.split(" #")[0]


def median(values):
    values = sorted(values)
    mid = len(values) // 2
    return values[mid] if len(values) % 2 else (values[mid - 1] + values[mid]) / 2


def hash_cost(n):
    import os

    import argon2
    from argon2.low_level import Type, hash_secret

    def one():
        return hash_secret(b"correct horse battery staple", os.urandom(16), time_cost=2,
                           memory_cost=19456, parallelism=1, hash_len=32, type=Type.ID)

    encoded = one().decode()
    if not encoded.startswith("$argon2id$v=19$m=19456,t=2,p=1$"):
        sys.exit(f"bench-auth: unexpected hash parameters: {encoded}")
    n = int(n)
    machine = machine_ticks()
    cpu, wall = time.process_time(), time.perf_counter()
    for _ in range(n):
        one()
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    busy, total = (a - b for a, b in zip(machine_ticks(), machine))
    cores = os.cpu_count() or 1
    # Whatever else ran meanwhile: the hash's CPU time stands, but it shares caches and
    # memory bandwidth with them.
    others = max(0.0, cores * busy / total - cpu / wall) if total else 0.0
    print(json.dumps({"cpu_ms": 1000 * cpu / n, "wall_ms": 1000 * wall / n, "hashes": n,
                      "other_cores": others,
                      "library": f"argon2-cffi {argon2.__version__} (libargon2)"}))


def machine_ticks():
    """The machine's busy and total ticks, all cores (as /proc/stat counts them)."""
    with open("/proc/stat") as stat:
        fields = [int(v) for v in stat.readline().split()[1:9]]
    user, nice, system, idle, iowait, irq, softirq, steal = fields
    busy = user + nice + system + irq + softirq + steal
    return busy, busy + idle + iowait


def users(base, service_key, prefix, n, password):
    def create(i):
        body = json.dumps({"email": f"{prefix}{i}@example.com", "password": password,
                           "email_confirm": True}).encode()
        req = urllib.request.Request(
            f"{base}/auth/v1/admin/users", data=body, method="POST",
            headers={"authorization": f"Bearer {service_key}", "apikey": service_key,
                     "content-type": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=60) as resp:
                return resp.status, ""
        except urllib.error.HTTPError as err:
            return err.code, err.read().decode(errors="replace")[:300]

    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(create, range(1, int(n) + 1)))
    bad = [(i + 1, code, text) for i, (code, text) in enumerate(answers) if code != 200]
    if bad:
        sys.exit(f"bench-auth: {len(bad)} of {n} admin user creations failed, "
                 f"e.g. user {bad[0][0]}: HTTP {bad[0][1]}: {bad[0][2]}")


def machine(cores, galley, cluster, wrk, busy, total):
    # Ticks over one run, all cores together; shares of the machine in cores.
    r = json.loads(sys.stdin.read())
    cores, galley, cluster, wrk, busy, total = map(int, (cores, galley, cluster, wrk, busy, total))
    share = (lambda ticks: cores * ticks / total) if total else (lambda ticks: 0.0)
    r.update({"machine_cores": share(busy), "cluster_cores": share(cluster),
              "wrk_cores": share(wrk), "other_cores": share(busy - galley - cluster - wrk)})
    print(json.dumps(r))


def table(results_file, hash_file, cores):
    cores = int(cores)
    rows = [json.loads(line) for line in open(results_file) if line.strip()]
    by_name = {r["workload"]: r for r in rows}
    head = ["workload", "connections", "req/s", "p99 ms", "notes"]
    out = [head]
    for r in rows:
        notes = [NOTES[base_name(r["workload"])]] if base_name(r["workload"]) in NOTES else []
        if r["rps"] and r["workload"] in ("signup", "login"):
            notes.append(f"galley CPU {1000 * r['cpu_cores'] / r['rps']:.1f} ms/req "
                         f"({r['cpu_cores']:.2f} cores)")
        else:
            notes.append(f"galley CPU {r['cpu_cores']:.2f} cores")
        notes.append(f"CPU (cores of {cores}): cluster {r['cluster_cores']:.2f}, "
                     f"wrk {r['wrk_cores']:.2f}, other processes {r['other_cores']:.2f}, "
                     f"idle {max(0.0, cores - r['machine_cores']):.2f}")
        if r["workload"] in REFERENCE:
            target = 2 * REFERENCE[r["workload"]]
            notes.append(f"target >= {target}/s: {'met' if r['rps'] >= target else 'NOT met'}")
        notes.append("other answers: " + (", ".join(f"{k}: {v}" for k, v in r["bad"].items())
                                          or "none"))
        out.append([r["workload"], str(r["conns"]), f"{r['rps']:.1f}", f"{r['p99_ms']:.1f}",
                    "; ".join(notes)])
    print_table(out, left=(0, 4))
    print()

    try:
        h = json.load(open(hash_file))
    except (OSError, ValueError):
        h = None
    if h:
        print(f"argon2id m=19456 KiB, t=2, p=1, one hash: {h['cpu_ms']:.1f} ms CPU "
              f"({h['wall_ms']:.1f} ms wall; mean of {h['hashes']}, {h['library']}; other "
              f"processes meanwhile: {h['other_cores']:.2f} cores)")
        print(f"  ceiling: {cores} cores / {h['cpu_ms']:.1f} ms = "
              f"{cores * 1000 / h['cpu_ms']:.0f} hashes (logins or signups) per second")
    else:
        print("argon2id one hash: NOT MEASURED (argon2-cffi could not be installed or run); "
              "see galley's own CPU per login below")
    login = by_name.get("login")
    if login and login["rps"]:
        per = 1000 * login["cpu_cores"] / login["rps"]
        print(f"galley's own CPU per login (process CPU / 200s, argon2 crate + HTTP + SQL): "
              f"{per:.1f} ms -> ceiling {cores} cores / {per:.1f} ms = {cores * 1000 / per:.0f} "
              f"logins/s (the cluster's CPU not included)")
    rounds = sorted({r["workload"].split(" #")[1] for r in rows if " #" in r["workload"]},
                    key=int)
    ratios, controls = [], []
    for n in rounds:
        alone = by_name.get(f"get-by-id alone #{n}")
        storm = by_name.get(f"get-by-id + login storm #{n}")
        control = by_name.get(f"get-by-id + idle busy loops #{n}")
        logins = by_name.get(f"login storm #{n}")
        if not (alone and storm and alone["p99_ms"]):
            continue
        ratio = storm["p99_ms"] / alone["p99_ms"]
        ratios.append(ratio)
        line = (f"round {n}: get-by-id p99 alone {alone['p99_ms']:.1f} ms, during the login "
                f"storm {storm['p99_ms']:.1f} ms (ratio {ratio:.2f}; req/s {alone['rps']:.0f} -> "
                f"{storm['rps']:.0f}; the storm's logins {logins['rps'] if logins else 0:.1f}/s)")
        if control:
            controls.append(control["p99_ms"] / alone["p99_ms"])
            line += (f"; control, SCHED_IDLE busy loops: {control['p99_ms']:.1f} ms "
                     f"(ratio {controls[-1]:.2f})")
        print(line)
    if ratios:
        m = median(ratios)
        print(f"get-by-id p99 during the login storm / alone, median of {len(ratios)} rounds: "
              f"{m:.2f} (target <= 2: {'met' if m <= 2 else 'NOT met'})"
              + (f"; the control's median: {median(controls):.2f}" if controls else ""))
    busy = [r for r in rows if r["other_cores"] > 0.15]
    if busy:
        print("NOT A QUIET MACHINE: other processes took CPU during "
              + ", ".join(f"{r['workload']} ({r['other_cores']:.2f} cores)" for r in busy)
              + ": these numbers understate Galley")
    print("reference (PocketBase, this machine): signup ~17/s, login ~33/s; "
          "target: twice those (34/s, 66/s)")


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"hash": hash_cost, "users": users, "machine": machine, "table": table}[command](*args)
