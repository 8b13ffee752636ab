-- kapi sandbox: serve the offline Kroger sandbox until Ctrl-C.
local cli = require "kapi.cli"
local parsing = require "kapi.parsing"
local errors = require "kapi.errors"
local input = require "kapi.input"

local M = {summary = "Serve the offline Kroger sandbox on loopback"}

local whole, number = parsing.whole_number, parsing.number

function M.arguments(parser)
  parser:option("--port", "Port on 127.0.0.1 (0: a free one)", "0"):convert(whole("--port", 0, 65535))
  parser:option("--seed", "Seed of the generated data", "1"):convert(whole("--seed", 0, 2 ^ 53))
  parser:option("--products", "Number of products", "20000"):convert(whole("--products", 1, 1000000)):argname("N")
  parser:option("--stores", "Number of stores", "300"):convert(whole("--stores", 1, 100000)):argname("N")
  parser:option("--items", "Number of Content1 items (cases and eaches)", "2000")
        :convert(whole("--items", 0, 1000000)):argname("N")
  parser:option("--token-ttl", "Lifetime of access tokens, in seconds", "1800")
        :convert(number("--token-ttl", 1, 30 * 86400)):argname("SECONDS")
  parser:option("--review-delay", "Seconds Kroger QA takes to review a publication", "2")
        :convert(number("--review-delay", 0, 7 * 86400)):argname("SECONDS")
  parser:option("--faults", "Inject faults: 5xx=RATE,reset=RATE,slow=RATE:2s,malformed=RATE,expire=RATE")
        :convert(function(text)
          local ok, why = require("kapi.sandbox.faults").parse(text)
          if not ok then return nil, ("--faults %s: %s"):format(errors.excerpt(text), why) end
          return text
        end):argname("SPEC")
  parser:option("--daily-limits", "The public app's daily budgets, e.g. products=500,cart=50 (default: Kroger's)")
        :convert(function(text)
          local ok, why = require("kapi.limits").parse(text)
          if not ok then return nil, ("--daily-limits %s: %s"):format(errors.excerpt(text), why) end
          return text
        end):argname("SPEC")
  parser:option("--tls", "Serve HTTPS with CERT,KEY (PEM files)"):argname("CERT,KEY")
  parser:flag("--deny-consent", "The authorize endpoint answers access_denied")
  parser:flag("--verbose", "Log one line per request on stderr")
end

-- The PEM files of --tls, read before anything starts: a file that cannot
-- be read is named, as every input is.
local function tls_files(spec)
  if not spec then return nil end
  local cert, key = spec:match("^([^,]+),([^,]+)$")
  if not cert then errors.usage(("--tls %s: expected CERT,KEY (two PEM files)"):format(errors.excerpt(spec)), 0) end
  for _, path in ipairs {cert, key} do
    local ok, err = pcall(input.read, path)
    if not ok then errors.usage("--tls " .. errors.message(err), 0) end
  end
  return cert, key
end

-- Starts the sandbox; a port that cannot be had or TLS files that are
-- refused are the options' fault, named as such.
local function start(kapi, args)
  local cert, key = tls_files(args.tls)
  local ok, sandbox = pcall(kapi.sandbox.start, {
    port = args.port, seed = args.seed, products = args.products, stores = args.stores, items = args.items,
    token_ttl = args.token_ttl, review_delay = args.review_delay, verbose = args.verbose or cli.options.verbose,
    faults = args.faults, deny_consent = args.deny_consent, tls_cert = cert, tls_key = key,
    daily_limits = args.daily_limits,
  })
  if ok then return sandbox end
  local message = errors.message(sandbox)
  local port_problem = message:match("^server: cannot listen on [^:]+:%d+: (.*)$")
  if port_problem then errors.usage(("--port %d: %s"):format(args.port, port_problem), 0) end
  local tls_problem = message:match("^server: (the TLS certificate or key was refused.*)$")
  if tls_problem then errors.usage("--tls " .. args.tls .. ": " .. tls_problem, 0) end
  error(sandbox, 0)
end

function M.run(args)
  local kapi = require "kapi"
  -- The catalog is a large heap that never changes: the generational
  -- collector leaves it alone and serves pages about 60% faster.
  collectgarbage("generational")
  local sandbox = start(kapi, args)
  local c = sandbox.credentials
  print("kapi sandbox: " .. sandbox.url)
  print("  partner client: KROGER_CLIENT_ID=" .. c.client_id .. " KROGER_CLIENT_SECRET=" .. c.client_secret)
  print("  public client:  KROGER_CLIENT_ID=" .. c.public_client_id .. " KROGER_CLIENT_SECRET=" .. c.public_client_secret)
  print("  Content1:       ONEWORLDSYNC_APP_ID=" .. c.content1_app_id .. " ONEWORLDSYNC_SECRET=" .. c.content1_secret)
  print("  (test credentials of this sandbox only; Ctrl-C stops it)")
  io.stdout:flush()
  local ok, err = pcall(function()
    while true do kapi.sleep(3600) end
  end)
  sandbox:close()
  if errors.is(err, "interrupted") then
    io.stderr:write("kapi sandbox: stopped\n")
    return 130 -- interrupted, as every command is
  end
  error(err, 0)
end

return M
