-- wrk script for scripts/bench-rest. Arguments after `--`:
--   fixed                       send the request wrk was given (method and body below)
--   post BODY                   POST BODY
--   random-id PATH_PREFIX MAX   GET PATH_PREFIX<n>, n uniform in 1..MAX
-- Headers come from wrk's -H. Every response's status is counted, and done() prints one
-- JSON line (requests, duration, p50/p99 latency, socket errors, status counts) so the
-- caller can refuse a run whose responses were not all the expected status.

local threads = {}

function setup(thread)
  thread:set("thread_no", #threads + 1)
  table.insert(threads, thread)
end

function init(args)
  mode = args[1] or "fixed"
  statuses = {}
  math.randomseed(os.time() * 1000 + thread_no)
  if mode == "post" then
    wrk.method = "POST"
    wrk.body = args[2]
  elseif mode == "random-id" then
    prefix = args[2]
    max_id = tonumber(args[3])
  end
  fixed = wrk.format()
end

function request()
  if mode == "random-id" then
    return wrk.format(nil, prefix .. math.random(1, max_id))
  end
  return fixed
end

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
