-- wrk script for scripts/bench-auth. Arguments after `--`:
--   signup TAG PASSWORD          POST /auth/v1/signup, a new email every request:
--                                bench-TAG-<thread>-<n>-<random>@example.com
--   otp TAG                      POST /auth/v1/otp, a new email every request (an account
--                                and a queued mail each: no password is hashed)
--   login PREFIX COUNT PASSWORD  POST /auth/v1/token?grant_type=password, cycling through
--                                PREFIX<1..COUNT>@example.com (each thread from its own
--                                starting point)
-- Headers (apikey, content-type, x-supabase-api-version) come from wrk's -H. done()
-- prints the JSON line scripts/bench-rest.d/wrk.lua prints (requests, duration, p50/p99
-- latency, socket errors, answers with an error status), so
-- scripts/bench-rest.d/helpers.py reads both alike.

-- setup() and done() come from scripts/bench-rest.d/report.lua.
dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "../bench-rest.d/report.lua")

function init(args)
  mode = args[1]
  counter = 0
  math.randomseed(os.time() * 1000 + thread_no)
  if mode == "signup" then
    tag = args[2]
    password = args[3]
  elseif mode == "otp" then
    tag = args[2]
  elseif mode == "login" then
    prefix = args[2]
    count = tonumber(args[3])
    password = args[4]
    counter = math.random(0, count - 1)
  else
    error("auth.lua: unknown mode " .. tostring(mode))
  end
end

function request()
  counter = counter + 1
  if mode == "signup" then
    local email = string.format("bench-%s-%d-%d-%d@example.com",
      tag, thread_no, counter, math.random(0, 999999))
    return wrk.format("POST", "/auth/v1/signup", nil,
      string.format('{"email":"%s","password":"%s"}', email, password))
  end
  if mode == "otp" then
    local email = string.format("otp-%s-%d-%d-%d@example.com",
      tag, thread_no, counter, math.random(0, 999999))
    return wrk.format("POST", "/auth/v1/otp", nil, string.format('{"email":"%s"}', email))
  end
  local email = string.format("%s%d@example.com", prefix, counter % count + 1)
  return wrk.format("POST", "/auth/v1/token?grant_type=password", nil,
    string.format('{"email":"%s","password":"%s"}', email, password))
end
