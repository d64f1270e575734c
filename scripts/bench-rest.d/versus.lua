-- wrk script for scripts/bench-rest.d/versus.py: one workload against Galley or
-- PocketBase. Arguments after `--`:
--   fixed                          the request wrk was given (GET)
--   post BODY                      POST BODY
--   ids FILE PREFIX [SUFFIX]       GET PREFIX<id>SUFFIX, id drawn uniformly from FILE's lines
--   signup galley|pocketbase       a new account every request (a fresh email, the
--                                  password below)
--   login galley|pocketbase FILE   the password grant, cycling through FILE's emails
--                                  (each thread from its own starting point)
-- Headers come from wrk's -H. done() prints report.lua's JSON line.

dofile((debug.getinfo(1, "S").source:match("^@(.*/)") or "./") .. "report.lua")

local PASSWORD = "bench-password-1234"

local function lines(path)
  local out = {}
  for line in io.lines(path) do
    if line ~= "" then table.insert(out, line) end
  end
  return out
end

function init(args)
  mode = args[1] or "fixed"
  counter = 0
  math.randomseed(os.time() * 1000 + thread_no)
  if mode == "post" then
    wrk.method = "POST"
    wrk.body = args[2]
  elseif mode == "ids" then
    -- Every request formatted once here: formatting one per request in Lua would cost
    -- wrk more than the cheapest systems spend answering it.
    requests = {}
    for _, id in ipairs(lines(args[2])) do
      table.insert(requests, wrk.format(nil, args[3] .. id .. (args[4] or "")))
    end
  elseif mode == "signup" then
    side = args[2]
    tag = tostring(math.random(0, 999999999))
  elseif mode == "login" then
    side = args[2]
    emails = lines(args[3])
    counter = math.random(0, #emails - 1)
  end
  fixed = wrk.format()
end

function request()
  counter = counter + 1
  if mode == "ids" then
    return requests[math.random(1, #requests)]
  elseif mode == "signup" then
    local email = string.format("s-%s-%d-%d@example.com", tag, thread_no, counter)
    if side == "galley" then
      return wrk.format("POST", "/auth/v1/signup", nil,
        string.format('{"email":"%s","password":"%s"}', email, PASSWORD))
    end
    return wrk.format("POST", "/api/collections/users/records", nil,
      string.format('{"email":"%s","password":"%s","passwordConfirm":"%s"}',
        email, PASSWORD, PASSWORD))
  elseif mode == "login" then
    local email = emails[counter % #emails + 1]
    if side == "galley" then
      return wrk.format("POST", "/auth/v1/token?grant_type=password", nil,
        string.format('{"email":"%s","password":"%s"}', email, PASSWORD))
    end
    return wrk.format("POST", "/api/collections/users/auth-with-password", nil,
      string.format('{"identity":"%s","password":"%s"}', email, PASSWORD))
  end
  return fixed
end
