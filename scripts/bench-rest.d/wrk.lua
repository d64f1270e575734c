-- wrk script for scripts/bench-rest. Arguments after `--`:
--   fixed                       send the request wrk was given (method and body below)
--   post BODY                   POST BODY
--   random-id PATH_PREFIX MAX   GET PATH_PREFIX<n>, n uniform in 1..MAX
-- Headers come from wrk's -H. Every response's status is counted, and done() prints one
-- JSON line (requests, duration, p50/p99 latency, socket errors, status counts) so the
-- caller can refuse a run whose responses were not all the expected status.

-- setup(), response() and done() come from report.lua beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

function init(args)
  mode = args[1] or "fixed"
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
