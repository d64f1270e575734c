-- wrk script for scripts/bench-rest. Arguments after `--`:
--   fixed                       send the request wrk was given (method and body below)
--   post BODY                   POST BODY
--   random-id PATH_PREFIX MAX   GET PATH_PREFIX<n>, n uniform in 1..MAX
-- Headers come from wrk's -H. done() prints one JSON line (requests, duration, p50/p99
-- latency, socket errors, answers with an error status) so the caller can refuse a run
-- with any error.

-- setup() and done() come from report.lua beside this file.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

function init(args)
  mode = args[1] or "fixed"
  math.randomseed(os.time() * 1000 + thread_no)
  if mode == "post" then
    wrk.method = "POST"
    wrk.body = args[2]
  elseif mode == "random-id" then
    -- Formatted once here, not per request (see versus.lua).
    requests = {}
    for n = 1, tonumber(args[3]) do
      requests[n] = wrk.format(nil, args[2] .. n)
    end
  end
  fixed = wrk.format()
end

function request()
  if mode == "random-id" then
    return requests[math.random(1, #requests)]
  end
  return fixed
end
