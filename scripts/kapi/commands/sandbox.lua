-- kapi sandbox: serve the offline Kroger sandbox until Ctrl-C.
local M = {summary = "Serve the offline Kroger sandbox on loopback"}

function M.arguments(parser)
  parser:option("--port", "Port on 127.0.0.1 (0: a free one)", "0"):convert(math.tointeger)
  parser:option("--seed", "Seed of the generated data", "1"):convert(math.tointeger)
  parser:option("--products", "Number of products", "20000"):convert(math.tointeger)
  parser:option("--stores", "Number of stores", "300"):convert(math.tointeger)
  parser:option("--items", "Number of Content1 items (cases and eaches)", "2000"):convert(math.tointeger)
  parser:option("--token-ttl", "Lifetime of access tokens, in seconds", "1800"):convert(tonumber)
  parser:option("--review-delay", "Seconds Kroger QA takes to review a publication", "2"):convert(tonumber)
  parser:option("--faults", "Inject faults: 5xx=RATE,reset=RATE,slow=RATE:2s,malformed=RATE,expire=RATE")
  parser:option("--tls", "Serve HTTPS with CERT,KEY (PEM files)")
  parser:flag("--deny-consent", "The authorize endpoint answers access_denied")
  parser:flag("--verbose", "Log one line per request on stderr")
end

function M.run(args)
  local kapi = require "kapi"
  -- The catalog is a large heap that never changes: the generational
  -- collector leaves it alone and serves pages about 60% faster.
  collectgarbage("generational")
  local cert, key
  if args.tls then
    cert, key = args.tls:match("^([^,]+),([^,]+)$")
    if not cert then require("kapi.errors").usage("--tls takes CERT,KEY", 0) end
  end
  local sandbox = kapi.sandbox.start {
    port = args.port, seed = args.seed, products = args.products, stores = args.stores, items = args.items,
    token_ttl = args.token_ttl, review_delay = args.review_delay, verbose = args.verbose, faults = args.faults,
    deny_consent = args.deny_consent,
    tls_cert = cert, tls_key = key,
  }
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
  if require("kapi.errors").is(err, "interrupted") then
    io.stderr:write("kapi sandbox: stopped\n")
    return 0
  end
  error(err, 0)
end

return M
