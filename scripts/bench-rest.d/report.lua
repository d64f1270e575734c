-- The reporting half of Galley's wrk scripts (scripts/bench-rest.d/wrk.lua and
-- scripts/bench-auth.d/auth.lua load it with dofile): every response's status is counted
-- per thread, and done() prints one JSON line (requests, duration, p50/p99 latency,
-- socket errors, status counts) that scripts/bench-rest.d/helpers.py reads, so a caller
-- can refuse a run whose responses were not all the expected status. It also numbers the
-- threads (`thread_no`, from 1) for the scripts' random seeds.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

statuses = {}

function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
end

function done(summary, latency, requests)
  local counts = {}
  for _, thread in ipairs(threads) do
    for status, n in pairs(thread:get("statuses")) do
      counts[status] = (counts[status] or 0) + n
    end
  end
  local parts = {}
  for status, n in pairs(counts) do
    table.insert(parts, string.format('"%d":%d', status, n))
  end
  local e = summary.errors
  io.write(string.format(
    '{"requests":%d,"duration_us":%d,"p50_us":%d,"p99_us":%d,' ..
    '"errors":{"connect":%d,"read":%d,"write":%d,"timeout":%d},"statuses":{%s}}\n',
    summary.requests, summary.duration, latency:percentile(50), latency:percentile(99),
    e.connect, e.read, e.write, e.timeout, table.concat(parts, ",")))
end
