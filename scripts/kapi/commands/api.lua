-- kapi api [METHOD] PATH [FIELDS...]: one request to a Kroger or
-- 1WorldSync API, for the endpoint no recipe wraps yet, as `gh api` and
-- restish do: the path is the service's, the credentials kapi's (a
-- service token with --scope, the customer's with --customer, HMAC for
-- 1WorldSync), fields become the query or a JSON body, and --paginate
-- follows the service's own pagination. What would change state is only
-- printed unless --apply is given.
local errors = require "kapi.errors"
local json = require "kapi.json"

local M = {summary = "Send a request to a Kroger or 1WorldSync API (the endpoint nobody wrapped yet)"}

M.description = [[
PATH is relative to the service (--service kroger, content1 or items) in
the chosen environment (--env). FIELDS:
  key=value     a query parameter (GET, HEAD, DELETE) or a JSON string field
  key:=JSON     a JSON value: key:=3, key:=true, key:='["a","b"]'
  key==value    always a query parameter (a POST's pageSize, say)
  @FILE or -    the request body, from a file or standard input
Kroger requests carry a service token or, with --customer, the customer
login of `kapi auth login`, with the scopes of --scope (by default the
scope the endpoint needs: products, coupons, cart, my coupons, identity);
1WorldSync requests are signed. POST, PUT, PATCH and DELETE to Kroger or to Item Management
are printed, not sent, unless --apply is given (Content1's POSTs are
searches and are sent). --paginate follows the service's pagination
(Kroger's filter.start and filter.limit, Content1's searchAfter) and
prints the items as a JSON array, or one a line with --jsonl; --select
keeps a field (description, items.1.upc) or the value of a Lua expression
of `it` (it.price.regular * 2), an item being left out when it gives nil.
Exit status: 0, 1 for an HTTP error (its body still printed), 2 for a
usage error. Examples:
  kapi api /v1/locations filter.zipCode.near=45202 filter.limit=3
  kapi api /v1/products filter.term=milk --paginate --max-items 100 --select description
  kapi api --service content1 POST /V1/product/fetch --paginate --max-items 10 --select item.gtin
  kapi api --customer PUT /v1/cart/add items:='[{"upc":"0001111041700","quantity":1}]']]

local METHODS = {GET = true, HEAD = true, POST = true, PUT = true, PATCH = true, DELETE = true}
local QUERY_METHODS = {GET = true, HEAD = true, DELETE = true}
local SERVICES = {"kroger", "content1", "items"}

function M.arguments(parser)
  parser:argument("words", "[METHOD] PATH [FIELDS...]"):args("+"):argname("[METHOD] PATH [FIELD]")
  parser:option("--service", "The API: kroger (default), content1 (1WorldSync Content1) or items "
                .. "(1WorldSync Item Management)"):choices(SERVICES):default("kroger")
  parser:option("--env", "The environment: sandbox, ce or prod for Kroger; sandbox, preprod or prod for "
                .. "1WorldSync (default: as configured)")
  parser:option("--scope", "A scope the Kroger token must have (repeatable)"):count("*"):argname("SCOPE")
  parser:flag("--customer", "Use the customer login (kapi auth login) instead of a service token")
  parser:option("-H --header", "A request header, 'Name: value' (repeatable)"):count("*"):argname("HEADER")
  parser:flag("-i --include", "Print the response's status line and headers before its body")
  parser:flag("--paginate", "Follow the service's pagination and print every item")
  parser:option("--max-items", "With --paginate: stop after N items"):argname("N")
        :convert(require("kapi.parsing").whole_number("--max-items", 1, 100000000))
  parser:flag("--jsonl", "One JSON value a line (the items of --paginate, or of a list)")
  parser:option("--select", "Keep a field, or a Lua expression of it, per item (or of the body)"):argname("EXPR")
  parser:flag("--apply", "Send a request that changes state (without it, it is printed)")
end

-- The command line ----------------------------------------------------------------

local function usage(fmt, ...) errors.usage(fmt:format(...), 0) end

-- {method, path, query = {{k, v}}, fields = {k = v} | nil, body = text | nil}
local function request_of(args)
  local words = args.words
  local first = 1
  local method = words[1]:upper()
  if METHODS[method] and words[2] then first = 2 else method = nil end
  local path = words[first]
  if path:match("^%a[%w+.-]*://") then
    usage("%s: give a path (%s); --service and --env choose the host", errors.excerpt(path), "/v1/products")
  end
  if path:sub(1, 1) ~= "/" then
    usage("%s: expected a METHOD or a PATH starting with / (/v1/products)", errors.excerpt(path))
  end
  if path:find("[%s#]") then usage("path %s: a path holds no spaces or #", errors.excerpt(path)) end
  local r = {path = path, query = {}, fields = nil, body = nil}
  local fields, fielded = {}, false
  for i = first + 1, #words do
    local word = words[i]
    local key, op, value = word:match("^([^=:@][^=:]*)(:?==?)(.*)$")
    if word == "-" or word:match("^@.") then
      if r.body then usage("%s: the body was given already", errors.excerpt(word)) end
      local input = require "kapi.input"
      r.body = input.read(word == "-" and "-" or word:sub(2), {empty_ok = true, line_ends = true})
    elseif not key then
      usage("%s: expected key=value, key:=JSON, key==value, @FILE or -", errors.excerpt(word))
    elseif op == "==" then
      r.query[#r.query + 1] = {key, value}
    elseif op == ":=" then
      local ok, decoded = pcall(json.decode, value)
      if not ok then usage("%s: not JSON (%s)", errors.excerpt(word), errors.message(decoded)) end
      fields[key], fielded = decoded, true
    elseif op == "=" then
      fields[key], fielded = value, true
      r.plain = r.plain or {}
      r.plain[#r.plain + 1] = {key, value}
    else
      usage("%s: expected key=value, key:=JSON, key==value, @FILE or -", errors.excerpt(word))
    end
  end
  -- As httpie: GET, unless a body is given (@FILE, -, or a key:=JSON field).
  local has_body = r.body ~= nil
  for _, v in pairs(fields) do has_body = has_body or type(v) ~= "string" end
  method = method or (has_body and "POST" or "GET")
  r.method = method
  if fielded then
    if QUERY_METHODS[method] then
      for k, v in pairs(fields) do
        if type(v) ~= "string" then
          usage("%s:=...: a %s request has no body; give it as %s=VALUE", k, method, k)
        end
      end
      for _, pair in ipairs(r.plain or {}) do r.query[#r.query + 1] = pair end
    else
      if r.body then usage("give the body as @FILE or - or as fields, not both") end
      r.fields = fields
    end
  end
  return r
end

local function headers_of(args)
  local out = {}
  for _, h in ipairs(args.header) do
    local name, value = h:match("^([!#$%%&'*+.^_`|~%w-]+):%s*(.*)$")
    if not name then usage("-H %s: expected 'Name: value'", errors.excerpt(h)) end
    if name:lower() == "authorization" then usage("-H %s: kapi sends the credentials itself", name) end
    out[#out + 1] = {name, value}
  end
  return out
end

-- The service -------------------------------------------------------------------

-- The scope an endpoint needs when --scope is not given, as kapi.kroger
-- asks for it: a service token's (products: the app's product scope) or
-- the customer's (cart, my coupons, identity).
local SERVICE_SCOPES = {{"^/v1/products", "product"}, {"^/v1/coupons", "coupons.basic"}}
local CUSTOMER_SCOPES = {{"^/v1/cart/add", "cart.basic:write"}, {"^/v1/carts", "cart.basic:rw"},
                         {"^/v1/my_coupons", "coupon.personalized:rw"}, {"^/v1/identity", "profile.compact"}}

local function scope_for(list, path, client)
  for _, entry in ipairs(list) do
    if path:match(entry[1]) then return entry[2] == "product" and client.product_scope or entry[2] end
  end
end

-- {base_url, auth, mutating(method), client} for the chosen service.
local function service_of(args, path)
  local kapi = require "kapi"
  if args.service == "kroger" then
    local client = kapi.kroger.client {env = args.env}
    local scope = #args.scope > 0 and table.concat(args.scope, " ")
                  or scope_for(args.customer and CUSTOMER_SCOPES or SERVICE_SCOPES, path, client)
    local auth
    if args.customer then
      if not scope then usage("--customer needs --scope SCOPE: the scope the request needs (cart.basic:write, ...)") end
      auth = function() return client:ensure_customer(scope) end
    else
      auth = function() return client:service(scope) end
    end
    return {name = "kroger", base_url = client.base_url, auth = auth, client = client,
            mutating = function(method) return not QUERY_METHODS[method] or method == "DELETE" end}
  end
  if args.customer or #args.scope > 0 then
    usage("%s: only Kroger requests take --customer or --scope", args.customer and "--customer" or "--scope")
  end
  local client = args.service == "content1" and kapi.content1.client {env = args.env}
                 or kapi.items.client {env = args.env}
  return {name = args.service, base_url = client.base_url, auth = function() return client.signer end,
          -- Content1 is searches only: its POSTs ask, they change nothing.
          mutating = function(method)
            return args.service == "items" and (not QUERY_METHODS[method] or method == "DELETE")
          end}
end

-- Output ---------------------------------------------------------------------------

local function field_path(expr)
  local parts = {}
  for part in expr:gsub("^%.", ""):gsub("^it%.", ""):gmatch("[^.]+") do
    parts[#parts + 1] = math.tointeger(tonumber(part)) or part
  end
  return function(it)
    local v = it
    for _, p in ipairs(parts) do
      if type(v) ~= "table" then return nil end
      v = v[p]
    end
    return v
  end
end

-- description, .items.1.upc: names and numbers joined by dots.
local function is_path(expr)
  local text = expr:gsub("^%.", ""):gsub("^it%.", "")
  if not text:match("^[%a_]") then return false end
  for part in (text .. "."):gmatch("([^.]*)%.") do
    if not part:match("^[%w_]+$") then return false end
  end
  return true
end

local SAFE = {string = string, math = math, table = table, utf8 = utf8, tostring = tostring, tonumber = tonumber,
              ipairs = ipairs, pairs = pairs, select = select, type = type, next = next, null = json.null}

-- --select: a field path, or a Lua expression of `it` (no access to the
-- file system or the process: it is data, typed on a command line).
local function selector(expr)
  if not expr then return nil end
  if is_path(expr) then return field_path(expr) end
  local chunk, err = load("return " .. expr, "=--select", "t")
  if not chunk then
    usage("--select %s: not a field or a Lua expression (%s)", errors.excerpt(expr), (err:gsub("^%-%-select:%d+: ", "")))
  end
  return function(it)
    local env = setmetatable({it = it}, {__index = function(_, k)
      if SAFE[k] ~= nil then return SAFE[k] end
      return type(it) == "table" and it[k] or nil
    end})
    local f = load("return " .. expr, "=--select", "t", env)
    local ok, value = pcall(f)
    if not ok then
      error(errors.new("usage", ("--select %s: %s"):format(errors.excerpt(expr),
                                                         (tostring(value):gsub("^%-%-select:%d+: ", "")))), 0)
    end
    return value
  end
end

local function write(text) io.stdout:write(text) end

-- A value as --select and --jsonl print it: a string as it is (for the
-- shell) unless JSON lines were asked for, anything else as JSON.
local function value_text(value, args)
  if type(value) == "string" and not args.jsonl then return value end
  return json.encode(value)
end

-- Items printed as they come: a JSON array, or one value a line.
local function item_writer(args)
  local pick, n = selector(args.select), 0
  local lines = args.jsonl or args.select
  return {
    add = function(item)
      local value = item
      if pick then
        value = pick(item)
        if value == nil then return end
      end
      n = n + 1
      if lines then write(value_text(value, args) .. "\n")
      else write((n == 1 and "[\n  " or ",\n  ") .. json.encode(value)) end
    end,
    finish = function()
      if lines then return end
      write(n == 0 and "[]\n" or "\n]\n")
    end,
  }
end

local function show_head(res)
  write(("HTTP/%s %d\n"):format(res.http_version or "1.1", res.status))
  write((res.header_block or ""):gsub("\r\n", "\n"))
  write("\n")
end

local function show_body(args, res)
  local body = res.body or ""
  if not (args.select or args.jsonl) or body == "" then
    write(body)
    if body ~= "" and body:sub(-1) ~= "\n" and require("kapi.core").isatty(1) then write("\n") end
    return
  end
  local ok, value = pcall(json.decode, body)
  if not ok then error(errors.new("input", "--select and --jsonl need a JSON answer: " .. errors.message(value)), 0) end
  local out = item_writer(args)
  if args.jsonl and type(value) == "table" and (value[1] ~= nil or json.is_array(value)) and not args.select then
    for _, v in ipairs(value) do out.add(v) end
  else
    out.add(value)
  end
  out.finish()
end

-- The error a status of 400 or more is: one line, as kapi says HTTP errors.
local function http_failure(req, res)
  local http = require "kapi.http"
  local parsed = http.parse_error_body(res.body)
  local detail = parsed.code and (parsed.code .. (parsed.reason and (": " .. parsed.reason) or ""))
                 or parsed.reason or ""
  return errors.new("http", ("%s %s: %d%s"):format(req.method, req.path, res.status,
                                                   detail ~= "" and (" " .. errors.excerpt(detail, 200)) or ""))
end

-- Sending ---------------------------------------------------------------------------

local function send(service, req, headers, extra_query)
  local http = require "kapi.http"
  local query = {}
  for _, pair in ipairs(req.query) do query[#query + 1] = pair end
  for _, pair in ipairs(extra_query or {}) do query[#query + 1] = pair end
  local opts = {method = req.method, url = service.base_url .. req.path, query = query, headers = headers,
                auth = service.auth(), raise = false, retry = QUERY_METHODS[req.method] and req.method ~= "DELETE"}
  if req.fields then opts.json = req.fields elseif req.body then opts.body = req.body end
  if service.client then
    return service.client:get(req.path, query, opts.auth, {method = req.method, json = opts.json, body = opts.body,
                                                           headers = headers, raise = false, retry = opts.retry})
  end
  return http.request(opts)
end

local function dry_run(service, req, headers)
  local http = require "kapi.http"
  local query = http.encode_query(req.query)
  write(("%s %s%s%s\n"):format(req.method, service.base_url, req.path, query ~= "" and ("?" .. query) or ""))
  write(("Authorization: %s\n"):format(service.name == "kroger" and "Bearer (a token kapi gets, not shown)"
                                       or "(the 1WorldSync signature kapi computes, not shown)"))
  for _, h in ipairs(headers) do write(("%s: %s\n"):format(h[1], h[2])) end
  if req.fields then
    write("Content-Type: application/json\n\n" .. json.encode(req.fields, {sorted = true}) .. "\n")
  elseif req.body then
    write("\n" .. req.body .. (req.body:sub(-1) == "\n" and "" or "\n"))
  end
  io.stdout:flush()
  require("kapi.log").note("kapi: dry run: nothing was sent (%s changes state; --apply sends it)", req.method)
  return 0
end

-- --paginate: the service's own pagination, the items streamed.
local function paginate(args, service, req, headers)
  local paginate_lib = require "kapi.paginate"
  local out = item_writer(args)
  local iterator
  if service.name == "kroger" then
    if req.method ~= "GET" then usage("--paginate: Kroger pages GET requests (filter.start, filter.limit)") end
    local limit = 50
    for _, pair in ipairs(req.query) do
      if pair[1] == "filter.limit" then limit = math.tointeger(tonumber(pair[2])) or limit end
      if pair[1] == "filter.start" then usage("--paginate sets filter.start itself") end
    end
    local base = {}
    for _, pair in ipairs(req.query) do if pair[1] ~= "filter.limit" then base[#base + 1] = pair end end
    iterator = paginate_lib.offset {limit = math.min(math.max(limit, 1), 50), max_offset = service.client.max_offset,
      max_items = args.max_items, fetch = function(start, size)
        local extra = {{"filter.limit", tostring(size)}}
        if start > 0 then extra[2] = {"filter.start", tostring(start)} end
        local res = send(service, {method = "GET", path = req.path, query = base}, headers, extra)
        if res.status >= 400 then error(http_failure(req, res), 0) end
        local page = res:json()
        local pagination = type(page) == "table" and type(page.meta) == "table" and page.meta.pagination or {}
        return type(page) == "table" and page.data or {}, type(pagination) == "table" and pagination.total or nil
      end,
      on_unreachable = function(n)
        require("kapi.log").note("kapi: %d more results are beyond the offset Kroger serves (%d); narrow the search",
                                 n, service.client.max_offset)
      end}
  elseif service.name == "content1" then
    if req.method ~= "POST" then usage("--paginate: Content1 pages POST searches (searchAfter)") end
    local sized = false
    for _, pair in ipairs(req.query) do sized = sized or pair[1] == "pageSize" end
    local extra = not sized and {{"pageSize", tostring(math.min(args.max_items or 1000, 1000))}} or nil
    iterator = paginate_lib.cursor {max_items = args.max_items, fetch = function(cursor)
      local body = {}
      for k, v in pairs(req.fields or (req.body and json.decode(req.body)) or {}) do body[k] = v end
      body.searchAfter = cursor
      local res = send(service, {method = "POST", path = req.path, query = req.query, fields = body}, headers, extra)
      if res.status == 204 then return {}, nil end
      if res.status >= 400 then error(http_failure(req, res), 0) end
      local page = res:json()
      if type(page) ~= "table" then return {}, nil end
      return page.items or {}, page.searchAfter, math.type(page.totalCount) == "integer" and page.totalCount or nil
    end}
  else
    usage("--paginate: Item Management answers without pages")
  end
  for item in iterator do out.add(item) end
  out.finish()
  return 0
end

function M.run(args)
  if args.max_items and not args.paginate then usage("--max-items goes with --paginate") end
  local req = request_of(args)
  local headers = headers_of(args)
  local service = service_of(args, req.path)
  if args.paginate then
    if args.include then usage("--paginate prints items, not headers: leave out -i") end
    return paginate(args, service, req, headers)
  end
  if service.mutating(req.method) and not args.apply then return dry_run(service, req, headers) end
  local res = send(service, req, headers)
  if args.include then show_head(res) end
  if res.status >= 400 then
    write(res.body or "")
    if (res.body or "") ~= "" and res.body:sub(-1) ~= "\n" then write("\n") end
    io.stdout:flush()
    error(http_failure(req, res), 0)
  end
  show_body(args, res)
  return 0
end

return M
