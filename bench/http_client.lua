-- kapi's side of bench/http: N GETs of URL, one after another ("seq") or
-- through kapi.map at a given concurrency ("fanout"). Prints requests per
-- second. CA_FILE (bench/https) verifies an https:// server against that
-- CA, set as kapi.http.defaults.ca_file, as a script trusting a private
-- CA would (SSL_CERT_FILE does the same).
--   kapi bench/http_client.lua seq URL N [CA_FILE]
--   kapi bench/http_client.lua fanout URL N CONCURRENCY [CA_FILE]
local kapi = require "kapi"
local mode, url, n = arg[1], arg[2], tonumber(arg[3])
local concurrency = mode == "fanout" and tonumber(arg[4]) or nil
local ca_file = arg[mode == "fanout" and 5 or 4]
local get = kapi.http.get
if ca_file then kapi.http.defaults.ca_file = ca_file end
-- Loads the transport (libcurl and its libraries: some 20 ms) before the
-- clock starts, as the raw client has libcurl loaded and set up before its
-- clock starts: both measure requests, not start-up (bench/startup does).
kapi.http.configure {max_host_connections = concurrency} -- nil: no limit set
local start = kapi.now()
if mode == "seq" then
  for _ = 1, n do get(url) end
else
  -- Workers pull from a counter: a script fanning out this many requests
  -- would not build a list of them first.
  local next_request = 0
  local function worker()
    while next_request < n do
      next_request = next_request + 1
      get(url)
    end
  end
  local workers = {}
  for i = 1, concurrency do workers[i] = kapi.spawn(worker) end
  for _, w in ipairs(workers) do w:wait() end
end
print(("%.0f"):format(n / (kapi.now() - start)))
