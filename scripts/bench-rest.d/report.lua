-- The reporting half of Galley's wrk scripts (scripts/bench-rest.d/wrk.lua, versus.lua and
-- scripts/bench-auth.d/auth.lua load it with dofile): done() prints one JSON line
-- (requests, duration, p50/p99 latency, socket errors and the answers with a status of
-- 400 or more) that the benchmarks' Python reads, so a caller can refuse a run with any
-- error. Statuses are not counted one by one: a Lua `response()` makes wrk hand every
-- answer's headers and body to Lua, and on a 2-core machine that load generator's CPU
-- cost both systems 15-40% of their throughput in bench-rest (each workload's exact answer
-- is checked once before it is loaded instead). It also numbers the threads (`thread_no`, from 1) for the
-- scripts' random seeds.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

function done(summary, latency, requests)
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d,"status":%d}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, e.status))
end
