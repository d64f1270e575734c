"""Helpers for scripts/bench-metrics-overhead (standard library only). The per-run result
lines come from scripts/bench-rest.d/helpers.py `wrk` piped through
scripts/bench-auth.d/helpers.py `machine`; these add to them and summarise them.

  listening PID MAIN_PORT             print the one TCP port PID listens on besides
                                      MAIN_PORT (the metrics listener, bound to port 0),
                                      read from /proc; refuse none or several
  scrape URL                          print `SERIES TOTAL`: how many
                                      galley_http_requests_total series name the route
                                      /rest/v1/{table}, and the sum of their values
  annotate CONFIG ROUND SLICE LOGGED COUNTED
                                      add the configuration, the round, the slice and
                                      what the log (request lines) and /metrics (requests
                                      counted) gained over the run to the result line on
                                      stdin
  instructions CONFIG CALLGRIND WRK    print one JSON line: the instructions callgrind
                                      counted (its dump's summary), the requests wrk had
                                      answered, all 200, and their quotient
  instructions-table FILE             print those lines and each configuration's
                                      overhead against B
  table RESULTS CORES TARGET_PCT      print every run, each configuration's mean and
                                      median, and the overhead of A (and of C and D when
                                      they ran) against B in the same slice: the median
                                      and the middle half over the slices, and a verdict
                                      on the mean with its 95 % confidence interval
"""

import json
import os
import re
import statistics
import sys
import urllib.request

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..",
                                "bench-rest.d"))
from tables import print_table  # noqa: E402

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


def annotate(config, round_no, slice_no, logged, counted):
    r = json.loads(sys.stdin.read())
    seconds_per_req = (lambda cores: cores / r["rps"]) if r["rps"] else (lambda cores: 0.0)
    r.update({"config": config, "round": int(round_no), "slice": int(slice_no),
              "logged": int(logged),
              "counted": int(counted),
              "galley_us_per_req": 1e6 * seconds_per_req(r["cpu_cores"]),
              "cluster_us_per_req": 1e6 * seconds_per_req(r["cluster_cores"])})
    print(json.dumps(r))


def instructions(config, callgrind_file, wrk_file):
    total = None
    with open(callgrind_file) as dump:
        for line in dump:
            if line.startswith("summary:"):
                total = int(line.split()[1])
                break
    if not total:
        sys.exit(f"bench-metrics-overhead: no instruction count in {callgrind_file}")
    run = json.loads(open(wrk_file).read().strip().splitlines()[-1])
    bad = {k: v for k, v in run["statuses"].items() if k != "200"}
    errors = {k: v for k, v in run["errors"].items() if v}
    if bad or errors or not run["requests"]:
        sys.exit(f"bench-metrics-overhead: {config}: answers other than 200 or socket errors: "
                 f"{bad} {errors}")
    print(json.dumps({"config": config, "instructions": total, "requests": run["requests"],
                      "per_request": total / run["requests"]}))


def instructions_table(counts_file):
    rows = [json.loads(line) for line in open(counts_file) if line.strip()]
    per = {r["config"]: r["per_request"] for r in rows}
    for r in rows:
        line = (f"{NAMES[r['config']]:<26} {r['per_request']:>9,.0f} instructions per request "
                f"({r['instructions']:,} over {r['requests']:,} requests)")
        if r["config"] != "B" and "B" in per:
            extra = r["per_request"] - per["B"]
            line += f"; {extra:+,.0f} ({100 * extra / per['B']:+.1f} %) against B"
        print(line)


NAMES = {"A": "A (metrics + request log)", "B": "B (both off)", "C": "C (metrics alone)",
         "D": "D (request log alone)"}


def quartiles(values):
    """The median and the middle half (first and third quartiles) of values."""
    if len(values) < 2:
        return values[0], values[0], values[0]
    q1, q2, q3 = statistics.quantiles(values, n=4, method="inclusive")
    return q2, q1, q3


def verdict(overheads, target):
    """Whether the mean slice overhead is under the target, with about 95 % confidence: the
    mean plus or minus two standard errors. Single slices scatter by 10 % and more on a
    shared machine; the mean of many of them is what can be told apart from the target."""
    n, mean = len(overheads), statistics.mean(overheads)
    if n < 3:
        return f"throughput overhead: too few slices to judge (mean {mean:+.1f} %)"
    sd = statistics.stdev(overheads)
    se = sd / n ** 0.5
    low, high = mean - 2 * se, mean + 2 * se
    interval = (f"mean {mean:+.1f} %, {low:+.1f} to {high:+.1f} % with 95 % confidence "
                f"(two standard errors over {n} slices, slice-to-slice spread {sd:.1f} %)")
    if high < target:
        return f"throughput overhead UNDER {target:g} %: {interval}"
    if low >= target:
        return f"throughput overhead OVER {target:g} %: {interval}"
    more = ""
    if mean < target:
        needed = (2 * sd / (target - mean)) ** 2
        more = f"; about {needed:.0f} slices would tell at this spread"
    return f"throughput overhead INCONCLUSIVE against {target:g} %: {interval}{more}"


def table(results_file, cores, target_pct):
    cores, target = int(cores), float(target_pct)
    rows = [json.loads(line) for line in open(results_file) if line.strip()]
    head = ["round", "slice", "config", "req/s", "p50 ms", "p99 ms", "galley CPU",
            "galley CPU/req", "cluster CPU/req", "wrk", "other procs", "idle", "log lines",
            "counted", "non-200"]
    out = [head]
    for r in rows:
        out.append([
            str(r["round"]), str(r["slice"]), r["config"], f"{r['rps']:.0f}",
            f"{r['p50_ms']:.2f}", f"{r['p99_ms']:.2f}", f"{r['cpu_cores']:.2f} cores",
            f"{r['galley_us_per_req']:.0f} us", f"{r['cluster_us_per_req']:.0f} us",
            f"{r['wrk_cores']:.2f}", f"{r['other_cores']:.2f}",
            f"{max(0.0, cores - r['machine_cores']):.2f}",
            str(r["logged"]), str(r["counted"]),
            ", ".join(f"{k}: {v}" for k, v in r["bad"].items()) or "none",
        ])
    print_table(out, left=(2, 14))
    print("(CPU columns in cores of", cores, "over the run; CPU/req = process user+system "
          "time / 200 answers; log lines and counted: what the log and /metrics gained over "
          "the run)")
    print()

    by = {c: [r for r in rows if r["config"] == c] for c in NAMES}
    by = {c: runs for c, runs in by.items() if runs}
    if "A" not in by or "B" not in by:
        print("not enough runs to compare")
        return
    for c, runs in by.items():
        rps = [r["rps"] for r in runs]
        p99 = [r["p99_ms"] for r in runs]
        cpu = [r["galley_us_per_req"] for r in runs]
        cl = [r["cluster_us_per_req"] for r in runs]
        print(f"{NAMES[c]:<26} req/s mean {statistics.mean(rps):.0f}, median "
              f"{statistics.median(rps):.0f} (range {min(rps):.0f}-{max(rps):.0f}); p99 median "
              f"{statistics.median(p99):.2f} ms; galley CPU/req mean {statistics.mean(cpu):.1f} "
              f"us, median {statistics.median(cpu):.1f} us; cluster CPU/req mean "
              f"{statistics.mean(cl):.1f} us")
    print()

    # Each configuration against B in the same slice: runs seconds apart, on the same machine.
    base = {(r["round"], r["slice"]): r for r in by["B"]}
    verdicts = []
    for c in ("A", "C", "D"):
        if c not in by:
            continue
        pairs = [(r, base[(r["round"], r["slice"])]) for r in by[c]
                 if (r["round"], r["slice"]) in base and base[(r["round"], r["slice"])]["rps"]]
        rps = [100 * (1 - r["rps"] / b["rps"]) for r, b in pairs]
        cpu = [100 * (r["galley_us_per_req"] / b["galley_us_per_req"] - 1) for r, b in pairs
               if b["galley_us_per_req"]]
        us = [r["galley_us_per_req"] - b["galley_us_per_req"] for r, b in pairs]
        # The cluster does the same work per request in every configuration; galley's CPU
        # per request over the cluster's in the same run takes out what moves both.
        rel = [100 * ((r["galley_us_per_req"] / r["cluster_us_per_req"])
                      / (b["galley_us_per_req"] / b["cluster_us_per_req"]) - 1)
               for r, b in pairs if r["cluster_us_per_req"] and b["cluster_us_per_req"]]
        label = f"1 - {c}/B"
        m, q1, q3 = quartiles(rps)
        print(f"{NAMES[c]}, over {len(pairs)} slices against B:")
        print(f"  throughput overhead {label}: median {m:+.1f} %, middle half {q1:+.1f} to "
              f"{q3:+.1f} %, range {min(rps):+.1f} to {max(rps):+.1f} %; mean "
              f"{statistics.mean(rps):+.1f} %; {sum(v >= target for v in rps)} of {len(rps)} "
              f"slices at or over {target:g} %")
        m2, q1c, q3c = quartiles(cpu)
        print(f"  galley CPU per request {c}/B - 1: median {m2:+.1f} % "
              f"({statistics.median(us):+.1f} us), middle half {q1c:+.1f} to {q3c:+.1f} %")
        if rel:
            m3, q1r, q3r = quartiles(rel)
            print(f"  the same over the cluster's CPU per request: median {m3:+.1f} %, middle "
                  f"half {q1r:+.1f} to {q3r:+.1f} %")
        if c == "A":
            verdicts.append(verdict(rps, target))
    print()
    for v in verdicts:
        print("verdict:", v)
    busy = [r for r in rows if r["other_cores"] > 0.15]
    if busy:
        print("NOT A QUIET MACHINE: other processes took CPU during run(s) "
              + ", ".join(f"{r['round']}/{r['slice']} {r['config']} ({r['other_cores']:.2f} "
                          f"cores)" for r in busy))
    bad = [r for r in rows if r["bad"]]
    if bad:
        print("NON-200 ANSWERS OR SOCKET ERRORS in run(s) "
              + ", ".join(f"{r['round']}/{r['slice']} {r['config']}" for r in bad))


if __name__ == "__main__":
    command, args = sys.argv[1], sys.argv[2:]
    {"listening": listening, "scrape": scrape, "annotate": annotate,
     "instructions": instructions, "instructions-table": instructions_table,
     "table": table}[command](*args)
