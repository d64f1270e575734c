"""Helpers for scripts/bench-metrics-overhead (standard library only). The per-run result
lines come from scripts/bench-rest.d/helpers.py `wrk` piped through
scripts/bench-auth.d/helpers.py `machine`; these add to them and summarise them.

  listening PID MAIN_PORT             print the one TCP port PID listens on besides
                                      MAIN_PORT (the metrics listener, bound to port 0),
                                      read from /proc; refuse none or several
  scrape URL                          print `SERIES TOTAL`: how many
                                      galley_http_requests_total series name the route
                                      /rest/v1/{table}, and the sum of their values
  annotate CONFIG ROUND LOGGED COUNTED
                                      add the configuration, the round and what the log
                                      (request lines) and /metrics (requests counted)
                                      gained over the run to the result line on stdin
  table RESULTS CORES TARGET_PCT      print the rounds, each configuration's mean and
                                      median, the overhead (1 - A/B) and whether it can be
                                      told apart from the noise
"""

import json
import os
import re
import statistics
import sys
import urllib.request

ROUTE = "/rest/v1/{table}"


def listening(pid, main_port):
    inodes = set()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except OSError:
            continue
        m = re.fullmatch(r"socket:\[(\d+)\]", link)
        if m:
            inodes.add(m.group(1))
    ports = set()
    for table in (f"/proc/{pid}/net/tcp", f"/proc/{pid}/net/tcp6"):
        try:
            lines = open(table).read().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            local, state, inode = fields[1], fields[3], fields[9]
            if state == "0A" and inode in inodes:  # 0A: LISTEN
                ports.add(int(local.rsplit(":", 1)[1], 16))
    ports.discard(int(main_port))
    if len(ports) != 1:
        sys.exit(f"bench-metrics-overhead: galley ({pid}) listens on {sorted(ports) or 'nothing'} "
                 f"besides {main_port}; expected the metrics listener alone")
    print(ports.pop())


def scrape(url):
    with urllib.request.urlopen(url, timeout=10) as resp:
        text = resp.read().decode()
    series, total = 0, 0.0
    for line in text.splitlines():
        if line.startswith("galley_http_requests_total{") and f'route="{ROUTE}"' in line:
            series += 1
            total += float(line.rsplit(" ", 1)[1])
    print(series, int(total))


def annotate(config, round_no, logged, counted):
    r = json.loads(sys.stdin.read())
    seconds_per_req = (lambda cores: cores / r["rps"]) if r["rps"] else (lambda cores: 0.0)
    r.update({"config": config, "round": int(round_no), "logged": int(logged),
              "counted": int(counted),
              "galley_us_per_req": 1e6 * seconds_per_req(r["cpu_cores"]),
              "cluster_us_per_req": 1e6 * seconds_per_req(r["cluster_cores"])})
    print(json.dumps(r))


def table(results_file, cores, target_pct):
    cores, target = int(cores), float(target_pct)
    rows = [json.loads(line) for line in open(results_file) if line.strip()]
    head = ["round", "config", "req/s", "p50 ms", "p99 ms", "galley CPU", "galley CPU/req",
            "cluster CPU/req", "wrk", "other procs", "idle", "log lines", "counted", "non-200"]
    out = [head]
    for r in rows:
        out.append([
            str(r["round"]), r["config"], f"{r['rps']:.0f}", f"{r['p50_ms']:.2f}",
            f"{r['p99_ms']:.2f}", f"{r['cpu_cores']:.2f} cores",
            f"{r['galley_us_per_req']:.0f} us", f"{r['cluster_us_per_req']:.0f} us",
            f"{r['wrk_cores']:.2f}", f"{r['other_cores']:.2f}",
            f"{max(0.0, cores - r['machine_cores']):.2f}",
            str(r["logged"]), str(r["counted"]),
            ", ".join(f"{k}: {v}" for k, v in r["bad"].items()) or "none",
        ])
    widths = [max(len(row[i]) for row in out) for i in range(len(head))]
    for n, row in enumerate(out):
        print(" | ".join(cell.ljust(widths[i]) if i in (1, 13) else cell.rjust(widths[i])
                         for i, cell in enumerate(row)).rstrip())
        if n == 0:
            print("-+-".join("-" * w for w in widths))
    print("(CPU columns in cores of", cores, "over the measured window; CPU/req = process "
          "user+system time / 200 answers; log lines and counted: what the log and "
          "/metrics gained over the window)")
    print()

    by = {c: [r for r in rows if r["config"] == c] for c in ("A", "B")}
    if not by["A"] or not by["B"]:
        print("not enough rounds to compare")
        return

    def stats(key, c):
        values = [r[key] for r in by[c]]
        return statistics.mean(values), statistics.median(values), min(values), max(values)

    names = {"A": "A (metrics + request log)", "B": "B (both off)"}
    for c in ("A", "B"):
        rps, p99, cpu = stats("rps", c), stats("p99_ms", c), stats("galley_us_per_req", c)
        cl = stats("cluster_us_per_req", c)
        print(f"{names[c]:<26} req/s mean {rps[0]:.0f}, median {rps[1]:.0f} "
              f"(range {rps[2]:.0f}-{rps[3]:.0f}); p99 mean {p99[0]:.2f} ms, median "
              f"{p99[1]:.2f} ms; galley CPU/req mean {cpu[0]:.1f} us, median {cpu[1]:.1f} us "
              f"(range {cpu[2]:.1f}-{cpu[3]:.1f}); cluster CPU/req mean {cl[0]:.1f} us")

    mean_a, med_a = stats("rps", "A")[:2]
    mean_b, med_b = stats("rps", "B")[:2]
    ca, cb = stats("galley_us_per_req", "A")[:2], stats("galley_us_per_req", "B")[:2]
    print(f"throughput overhead 1 - A/B: {100 * (1 - mean_a / mean_b):+.1f} % on the means, "
          f"{100 * (1 - med_a / med_b):+.1f} % on the medians (target < {target:g} %)")
    print(f"galley CPU per request A/B - 1: {100 * (ca[0] / cb[0] - 1):+.1f} % on the means, "
          f"{100 * (ca[1] / cb[1] - 1):+.1f} % on the medians "
          f"({ca[0] - cb[0]:+.1f} us per request)")

    # Each A round against the B round after it: drift within a pair is smaller than across
    # the whole run, and the spread over the pairs shows how much the machine moved.
    pairs = list(zip(by["A"], by["B"]))
    rps_pairs = [100 * (1 - a["rps"] / b["rps"]) for a, b in pairs]
    cpu_pairs = [100 * (a["galley_us_per_req"] / b["galley_us_per_req"] - 1) for a, b in pairs]
    print("per pair (round A_i vs B_i): throughput overhead "
          + ", ".join(f"{v:+.1f} %" for v in rps_pairs)
          + "; CPU/req overhead " + ", ".join(f"{v:+.1f} %" for v in cpu_pairs))

    def verdict(label, values):
        lo, hi = min(values), max(values)
        if hi < target:
            return f"{label}: under {target:g} % in every pair ({lo:+.1f} to {hi:+.1f} %)"
        if lo >= target:
            return f"{label}: OVER {target:g} % in every pair ({lo:+.1f} to {hi:+.1f} %)"
        return (f"{label}: INCONCLUSIVE, the pairs range from {lo:+.1f} to {hi:+.1f} %, "
                f"on both sides of {target:g} %")

    print(verdict("throughput", rps_pairs))
    print(verdict("galley CPU per request", cpu_pairs))
    # The cluster does the same work per request in A and B, so its CPU per request moves
    # only with the machine (a busy neighbour, a slower core): galley's CPU per request over
    # the cluster's, in the same round, takes most of that drift out.
    rel = {c: [r["galley_us_per_req"] / r["cluster_us_per_req"] for r in by[c]
               if r["cluster_us_per_req"]] for c in ("A", "B")}
    if rel["A"] and rel["B"]:
        ra, rb = statistics.mean(rel["A"]), statistics.mean(rel["B"])
        print(f"galley CPU/req over the cluster's CPU/req in the same round: A "
              + ", ".join(f"{v:.2f}" for v in rel["A"]) + "; B "
              + ", ".join(f"{v:.2f}" for v in rel["B"])
              + f": A/B - 1 = {100 * (ra / rb - 1):+.1f} % on the means")
    for c in ("A", "B"):
        values = [r["rps"] for r in by[c]]
        if len(values) > 1:
            cv = 100 * statistics.stdev(values) / statistics.mean(values)
            print(f"run-to-run spread of req/s in {c}: {cv:.1f} % (coefficient of variation)")
    busy = [r for r in rows if r["other_cores"] > 0.15]
    if busy:
        print("NOT A QUIET MACHINE: other processes took CPU during round(s) "
              + ", ".join(f"{r['round']} {r['config']} ({r['other_cores']:.2f} cores)"
                          for r in busy))
    bad = [r for r in rows if r["bad"]]
    if bad:
        print("NON-200 ANSWERS OR SOCKET ERRORS in round(s) "
              + ", ".join(f"{r['round']} {r['config']}" for r in bad))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"listening": listening, "scrape": scrape, "annotate": annotate,
     "table": table}[command](*args)
