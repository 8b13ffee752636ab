-- kapi as a Model Context Protocol server (stdio, JSON-RPC 2.0, one
-- message a line): every recipe is a tool, its inputSchema made from the
-- recipe's own argument definitions (the parser --help shows), its result
-- the recipe's --json rows as structuredContent. Mutating recipes do
-- nothing without `apply`; `kapi_api` is kapi api's engine, sending
-- what changes state only with `apply` too.
--
-- stdout carries protocol messages only: a recipe's output is caught while
-- it runs (io.stdout, io.stderr and print are swapped for buffers), and
-- every note goes to stderr. Messages are read as a wait on kapi's loop,
-- so a cancellation is heard while a tool runs; tools run one at a time,
-- since each holds the process's standard streams.
local core = require "kapi.core"
local errors = require "kapi.errors"
local json = require "kapi.json"
local task = require "kapi.task"

local M = {}

M.VERSIONS = {"2025-11-25", "2025-06-18", "2025-03-26"}
local SUPPORTED = {}
for _, v in ipairs(M.VERSIONS) do SUPPORTED[v] = true end

-- JSON-RPC's error codes.
local PARSE_ERROR, INVALID_REQUEST, METHOD_NOT_FOUND, INVALID_PARAMS = -32700, -32600, -32601, -32602

-- The options every recipe has that a tool does not: the output format is
-- always JSON, notes are always caught.
local NOT_FOR_TOOLS = {["--json"] = true, ["--jsonl"] = true, ["--csv"] = true, ["--table"] = true,
                       ["--quiet"] = true, ["--help"] = true, ["--watch"] = true, ["--until"] = true,
                       ["--notify"] = true}

local function long_name(option) return option.names[#option.names] end
local function property_name(flag) return (flag:gsub("^%-+", ""):gsub("%-", "_")) end

-- Options whose values are numbers, by the name of what they take.
local NUMERIC = {N = true, MILES = true, SECONDS = true}

-- A recipe as a tool ------------------------------------------------------------------

local function option_schema(option)
  if not option.takes_value then return {type = "boolean", description = option.help} end
  local item = {type = NUMERIC[option.argname or ""] and "number" or "string"}
  if option.choices then item = {type = "string", enum = option.choices} end
  local schema = item
  if option.repeatable then schema = {type = "array", items = item} end
  schema.description = option.help
  return schema
end

local function argument_schema(argument)
  local item = {type = "string"}
  if argument.choices then item.enum = argument.choices end
  if argument.max > 1 then return {type = "array", items = item, description = argument.help} end
  item.description = argument.help
  return item
end

-- The rows' schema: the keys the recipe declares for its plain run
-- (docs/recipes.md says what each holds), any JSON value each; none is
-- required, since some options print other rows (republish-check
-- --changes, coupons --clip).
local function row_schema(keys)
  if type(keys) ~= "table" or #keys == 0 then return {type = "object"} end
  local properties = {}
  for _, key in ipairs(keys) do properties[key] = {description = "see docs/recipes.md"} end
  return {type = "object", properties = properties}
end

-- {name, description, inputSchema, annotations, convert(arguments) -> argv}
local function tool_of(recipe_name, recipe, desc)
  local properties, required, order, mutating = {}, {}, {}, false
  for _, option in ipairs(desc.options) do
    local flag = long_name(option)
    if not NOT_FOR_TOOLS[flag] and not option.hidden then
      local name = property_name(flag)
      properties[name] = option_schema(option)
      order[#order + 1] = {name = name, flag = flag, option = option}
      if option.required then required[#required + 1] = name end
      if flag == "--apply" then
        mutating = true
        properties[name].description = "Do it: without apply the recipe only says what it would do"
      end
    end
  end
  local positional = {}
  for _, argument in ipairs(desc.arguments) do
    local name = property_name(argument.name)
    properties[name] = argument_schema(argument)
    positional[#positional + 1] = {name = name, argument = argument}
    if argument.min >= 1 then required[#required + 1] = name end
  end
  local inline
  if recipe_name == "preflight" then
    -- An assistant holds the hierarchy it made, not a file.
    properties.hierarchy = {description = "An item hierarchy (or a list of them) as JSON, instead of files"}
    inline = "hierarchy"
  end
  local schema = {type = "object", properties = properties, additionalProperties = false}
  if #required > 0 and not inline then schema.required = required end
  return {
    name = recipe_name, title = recipe.summary,
    description = (recipe.summary or recipe_name) .. (recipe.description and ("\n\n" .. recipe.description) or ""),
    inputSchema = schema,
    outputSchema = {type = "object", properties = {
      rows = {type = "array", items = row_schema(recipe.keys), description = "What the recipe printed with --json"},
      exitStatus = {type = "integer", description = "0 done; 1 something found or failed; 2 bad input"},
      messages = {type = "array", items = {type = "string"}, description = "What the recipe said on stderr"},
      sandbox = {type = "boolean", description = "Whether the answers came from kapi's built-in sandbox"},
    }, required = {"rows", "exitStatus", "messages", "sandbox"}},
    annotations = {title = recipe.summary, readOnlyHint = not mutating, destructiveHint = mutating,
                   idempotentHint = not mutating, openWorldHint = true},
    order = order, positional = positional, inline = inline, recipe = recipe,
  }
end

-- The command line a tool call stands for, or nil and what is wrong.
local function argv_of(tool, arguments)
  if arguments ~= nil and (type(arguments) ~= "table" or arguments[1] ~= nil) then
    return nil, "arguments must be an object"
  end
  arguments = arguments or {}
  local known = {}
  for name in pairs(tool.inputSchema.properties) do known[name] = true end
  for name in pairs(arguments) do
    if not known[name] then
      return nil, ("unknown argument %s%s"):format(errors.excerpt(tostring(name)),
        require("kapi.parsing").did_you_mean(tostring(name), (function()
          local names = {}
          for n in pairs(known) do names[#names + 1] = n end
          table.sort(names)
          return names
        end)()))
    end
  end
  local argv = {}
  local function scalar(name, v, argname)
    -- Standard input is the protocol's: a file named "-" would read it.
    if v == "-" and argname == "FILE" then error(name .. ": - (standard input) is not available to a tool", 0) end
    if type(v) == "string" then return v end
    if math.type(v) then return tostring(v) end
    error(("%s: expected a string or a number, got %s"):format(name, v == json.null and "null" or type(v)), 0)
  end
  local ok, err = pcall(function()
    for _, entry in ipairs(tool.order) do
      local v = arguments[entry.name]
      if v ~= nil and v ~= json.null then
        if not entry.option.takes_value then
          if type(v) ~= "boolean" then error(entry.name .. ": expected true or false", 0) end
          if v then argv[#argv + 1] = entry.flag end
        elseif entry.option.repeatable and type(v) == "table" then
          for _, item in ipairs(v) do
            argv[#argv + 1] = entry.flag
            argv[#argv + 1] = scalar(entry.name, item, entry.option.argname)
          end
        else
          argv[#argv + 1] = entry.flag .. "=" .. scalar(entry.name, v, entry.option.argname)
        end
      end
    end
    local rest = {}
    for _, p in ipairs(tool.positional) do
      local v = arguments[p.name]
      if type(v) == "table" then
        for _, item in ipairs(v) do rest[#rest + 1] = scalar(p.name, item, p.argument.argname) end
      elseif v ~= nil and v ~= json.null then
        rest[#rest + 1] = scalar(p.name, v, p.argument.argname)
      end
    end
    if #rest > 0 then
      argv[#argv + 1] = "--"
      table.move(rest, 1, #rest, #argv + 1, argv)
    end
  end)
  if not ok then return nil, err end
  return argv
end

-- Running with the streams caught -----------------------------------------------------

local function buffer()
  local parts = {}
  local b = {parts = parts}
  function b:write(...)
    for i = 1, select("#", ...) do parts[#parts + 1] = tostring((select(i, ...))) end
    return self
  end
  function b.flush() return b end
  function b.setvbuf() return true end
  function b.close() return true end
  function b.text() return table.concat(parts) end
  function b.lines() return b end
  return b
end

-- Runs fn() with io.stdout, io.stderr and print caught; returns fn's
-- status (cli.protect's), and the text written to each.
local function caught(fn)
  local out, err = buffer(), buffer()
  local saved_out, saved_err, saved_print = io.stdout, io.stderr, print
  io.stdout, io.stderr = out, err
  _G.print = function(...)
    local parts = {}
    for i = 1, select("#", ...) do parts[i] = tostring((select(i, ...))) end
    out:write(table.concat(parts, "\t"), "\n")
  end
  local log = require "kapi.log"
  local quiet = log.quiet
  local ok, status = pcall(require("kapi.cli").protect, fn)
  io.stdout, io.stderr, _G.print = saved_out, saved_err, saved_print
  log.quiet = quiet
  if not ok then error(status, 0) end -- cancelled or interrupted: not the tool's answer
  return status, out.text(), err.text()
end

local function messages_of(text)
  local out = {}
  for line in text:gmatch("[^\n]+") do
    if not line:match("^Usage: ") and not line:match("^%s") then out[#out + 1] = (line:gsub("^kapi: ", "")) end
  end
  return out
end

-- A private temporary file holding text, removed by the caller.
local function temporary(text)
  local path = os.tmpname()
  os.remove(path)
  local written, why = require("kapi.core.fs").write_atomic(path, text, 384)
  if not written then error(errors.new("input", "cannot write a temporary file: " .. tostring(why)), 0) end
  return path
end

local function result_of(status, stdout, stderr, sandbox)
  local messages = messages_of(stderr)
  local ok_json, rows = pcall(json.decode, stdout ~= "" and stdout or "[]")
  if not ok_json or type(rows) ~= "table" then rows = {} end
  local text = {}
  for _, m in ipairs(messages) do text[#text + 1] = m end
  if #rows > 0 then text[#text + 1] = json.encode(rows) end
  if sandbox then
    table.insert(text, 1, "(kapi answered from its built-in sandbox: test data, no real Kroger or 1WorldSync account)")
  end
  return {
    content = {{type = "text", text = #text > 0 and table.concat(text, "\n") or "(nothing to say)"}},
    structuredContent = {rows = json.array(rows), exitStatus = status, messages = json.array(messages),
                         sandbox = sandbox},
    isError = status == 2 or (status ~= 0 and #rows == 0),
  }
end

local function sandbox_in_use()
  local config = require "kapi.config"
  return config.sandbox_by_default() and true or false
end

local function call_recipe(tool, arguments)
  local argv, why = argv_of(tool, arguments)
  if not argv then
    return {content = {{type = "text", text = why}}, isError = true,
            structuredContent = {rows = json.array(), exitStatus = 2, messages = json.array {why}, sandbox = false}}
  end
  local inline_path
  if tool.inline and arguments and arguments[tool.inline] ~= nil then
    inline_path = temporary(json.encode(arguments[tool.inline]))
    argv[#argv + 1] = inline_path
  end
  table.insert(argv, 1, "--json")
  local run = require "kapi.commands.run"
  local status, stdout, stderr = caught(function() return run.run_recipe(tool.recipe, tool.name, argv) end)
  if inline_path then os.remove(inline_path) end
  return result_of(status, stdout, stderr, sandbox_in_use())
end

-- The raw-call tool: kapi api.
local API_TOOL = {
  name = "kapi_api", title = "One raw request to a Kroger or 1WorldSync API",
  description = "Sends one request with kapi's credentials, as `kapi api` does (see its help): path relative "
                .. "to the service, query and body from the arguments. POST, PUT, PATCH and DELETE to Kroger or "
                .. "Item Management are only described unless apply is true.",
  inputSchema = {type = "object", additionalProperties = false, required = {"path"}, properties = {
    method = {type = "string", enum = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE"}, description = "Default GET"},
    path = {type = "string", description = "The service's path, e.g. /v1/products"},
    service = {type = "string", enum = {"kroger", "content1", "items"}, description = "Default kroger"},
    query = {type = "object", description = "Query parameters (strings)"},
    body = {description = "The JSON body"},
    scope = {type = "array", items = {type = "string"}, description = "Scopes the Kroger token must have"},
    customer = {type = "boolean", description = "Use the customer login instead of a service token"},
    apply = {type = "boolean", description = "Send a request that changes state"},
  }},
  annotations = {title = "Raw API request", readOnlyHint = false, destructiveHint = true, openWorldHint = true},
}

local function call_api(arguments)
  if type(arguments) ~= "table" or type(arguments.path) ~= "string" then
    return {content = {{type = "text", text = "path is required: the service's path, e.g. /v1/products"}},
            isError = true}
  end
  local argv = {"--service", arguments.service or "kroger", arguments.method or "GET", arguments.path}
  for k, v in pairs(type(arguments.query) == "table" and arguments.query or {}) do
    argv[#argv + 1] = tostring(k) .. "==" .. tostring(v)
  end
  local body_path
  if arguments.body ~= nil then
    body_path = temporary(json.encode(arguments.body))
    argv[#argv + 1] = "@" .. body_path
  end
  for _, s in ipairs(type(arguments.scope) == "table" and arguments.scope or {}) do
    argv[#argv + 1] = "--scope"; argv[#argv + 1] = tostring(s)
  end
  if arguments.customer then argv[#argv + 1] = "--customer" end
  if arguments.apply then argv[#argv + 1] = "--apply" end
  local parsing = require "kapi.parsing"
  local status, stdout, stderr = caught(function()
    local parsed, bad = parsing.parse(parsing.command_parser("api"), argv)
    if not parsed then return bad end
    return require("kapi.commands.api").run(parsed)
  end)
  if body_path then os.remove(body_path) end
  local ok, value = pcall(json.decode, stdout)
  local messages = messages_of(stderr)
  local text = table.concat(messages, "\n")
  return {content = {{type = "text", text = (text ~= "" and (text .. "\n") or "") .. stdout}},
          structuredContent = {response = ok and value or stdout, exitStatus = status, messages = json.array(messages),
                               sandbox = sandbox_in_use()},
          isError = status ~= 0}
end

-- The server -------------------------------------------------------------------------

local Server = {}
Server.__index = Server

-- The real standard output, kept: while a tool runs, io.stdout is its
-- buffer, and an answer to a ping in the meantime must not land there.
local protocol_out = io.stdout

local function send(message)
  protocol_out:write(json.encode(message), "\n")
  protocol_out:flush()
end

local function reply(id, result) send {jsonrpc = "2.0", id = id, result = result} end
local function fail(id, code, message, data)
  send {jsonrpc = "2.0", id = id == nil and json.null or id, error = {code = code, message = message, data = data}}
end

function Server:tools()
  if self.tool_list then return self.tool_list end
  local recipes, run, parsing = require "kapi.recipes", require "kapi.commands.run", require "kapi.parsing"
  local list, by_name = {}, {}
  for _, entry in ipairs(recipes.list()) do
    local recipe = recipes.load(entry.path)
    if recipe and not by_name[entry.name] then
      local tool = tool_of(entry.name, recipe, parsing.describe(run.parser(recipe, entry.name)))
      list[#list + 1], by_name[entry.name] = tool, tool
    end
  end
  list[#list + 1], by_name[API_TOOL.name] = API_TOOL, API_TOOL
  self.tool_list, self.by_name = list, by_name
  return list
end

local function public(tool)
  return {name = tool.name, title = tool.title, description = tool.description, inputSchema = tool.inputSchema,
          outputSchema = tool.outputSchema, annotations = tool.annotations}
end

local handlers = {}

function handlers.initialize(self, params)
  local asked = type(params) == "table" and params.protocolVersion
  self.version = SUPPORTED[asked] and asked or M.VERSIONS[1]
  return {protocolVersion = self.version,
          capabilities = {tools = {listChanged = false}},
          serverInfo = {name = "kapi", title = "kapi: Kroger and 1WorldSync work", version = core.version},
          instructions = "Each tool is a kapi recipe; tools that change state (apply) only say what they would do "
                         .. "unless apply is true. With no credentials configured, answers come from kapi's "
                         .. "built-in sandbox (test data), and results say so."}
end

function handlers.ping() return {} end

function handlers.tools_list(self)
  local out = {}
  for i, tool in ipairs(self:tools()) do out[i] = public(tool) end
  return {tools = out}
end

-- tools/call runs in the worker, one call at a time; progress is told
-- when the request asked for it.
function handlers.tools_call(self, params, id)
  if type(params) ~= "table" or type(params.name) ~= "string" then
    return nil, {INVALID_PARAMS, "tools/call needs params.name"}
  end
  self:tools()
  local tool = self.by_name[params.name]
  if not tool then return nil, {INVALID_PARAMS, "unknown tool " .. errors.excerpt(params.name)} end
  local token = type(params._meta) == "table" and params._meta.progressToken or nil
  local recipe = require "kapi.recipe"
  if token ~= nil then
    local last = 0
    recipe.progress_listener = function(done, total)
      local now = core.now()
      if now - last < 0.2 and not (total and done >= total) then return end
      last = now
      send {jsonrpc = "2.0", method = "notifications/progress",
            params = {progressToken = token, progress = done, total = total}}
    end
  end
  local ok, result = pcall(function()
    if tool == API_TOOL then return call_api(params.arguments) end
    return call_recipe(tool, params.arguments)
  end)
  recipe.progress_listener = nil
  if not ok then error(result, 0) end
  return result
end

local ROUTES = {initialize = "initialize", ping = "ping", ["tools/list"] = "tools_list", ["tools/call"] = "tools_call"}

function Server:handle(id, method, params)
  local ok, result, problem = pcall(handlers[ROUTES[method]], self, params, id)
  if not ok then
    if errors.is(result, "cancelled") or errors.is(result, "interrupted") then return end
    return fail(id, -32603, "internal error: " .. errors.line(errors.message(result)))
  end
  if problem then return fail(id, problem[1], problem[2]) end
  if self.cancelled[id] then self.cancelled[id] = nil; return end -- asked to stop: no answer
  if id ~= nil then reply(id, result) end
end

-- The tool calls waiting for the worker, first in first out, read from
-- `first` on: table.remove(queue, 1) moved every call behind the one
-- taken, and a cancelled one was searched for, quadratic in a burst of
-- calls (20,000 took 3 s to serve). `waiting` counts each id's calls in
-- the queue, `dropped` how many of the first of them are cancelled.
local Queue = {}
Queue.__index = Queue

local function new_queue()
  return setmetatable({first = 1, last = 0, waiting = {}, dropped = {}}, Queue)
end

function Queue:push(call)
  self.last = self.last + 1
  self[self.last] = call
  self.waiting[call.id] = (self.waiting[call.id] or 0) + 1
end

-- The first call with this id still waiting will not be run.
function Queue:drop(id)
  if (self.waiting[id] or 0) == 0 then return end
  self.waiting[id] = self.waiting[id] - 1
  self.dropped[id] = (self.dropped[id] or 0) + 1
end

-- The next call to run, or nil.
function Queue:pop()
  while self.first <= self.last do
    local call = self[self.first]
    self[self.first], self.first = nil, self.first + 1
    local dropped = self.dropped[call.id]
    if dropped then
      self.dropped[call.id] = dropped > 1 and dropped - 1 or nil
    else
      self.waiting[call.id] = self.waiting[call.id] > 1 and self.waiting[call.id] - 1 or nil
      return call
    end
  end
end

-- One message: a request is answered (or queued for the worker), a
-- notification acted on.
function Server:receive(line)
  if not line:find("%S") then return end
  local ok, message = pcall(json.decode, line)
  if not ok then return fail(nil, PARSE_ERROR, "parse error: " .. errors.message(message)) end
  if type(message) ~= "table" or message[1] ~= nil or json.is_array(message) then
    return fail(nil, INVALID_REQUEST, "a message must be one JSON-RPC object (batches are not taken)")
  end
  local id, method = message.id, message.method
  if message.jsonrpc ~= "2.0" or type(method) ~= "string" or
     (id ~= nil and type(id) ~= "string" and math.type(id) ~= "integer") then
    return fail(math.type(id) == "integer" or type(id) == "string" and id or nil, INVALID_REQUEST,
                "not a JSON-RPC 2.0 request")
  end
  if id == nil then -- a notification
    if method == "notifications/cancelled" and type(message.params) == "table" then
      local job = self.running and self.running.id == message.params.requestId and self.running.task
      if job then
        self.cancelled[message.params.requestId] = true
        job:cancel()
      end
      self.queue:drop(message.params.requestId)
    end
    return
  end
  if not ROUTES[method] then return fail(id, METHOD_NOT_FOUND, "no method " .. errors.excerpt(method)) end
  if method ~= "tools/call" then return self:handle(id, method, message.params) end
  self.queue:push {id = id, params = message.params}
  if self.wake then self.wake() end
end

-- The worker: runs queued tool calls one after another.
function Server:work()
  while true do
    local next_call = self.queue:pop()
    if next_call then
      local t = task.spawn(function() return self:handle(next_call.id, "tools/call", next_call.params) end)
      self.running = {id = next_call.id, task = t}
      pcall(t.wait, t)
      self.running = nil
    elseif self.closed then
      return
    else
      local waiter
      waiter = task.spawn(function() task.sleep(3600) end)
      self.wake = function() waiter:cancel() end
      pcall(waiter.wait, waiter)
      self.wake = nil
    end
  end
end

--- Serves MCP on standard input and output until the input ends.
function M.serve()
  local server = setmetatable({queue = new_queue(), cancelled = {}}, Server)
  local reader <close> = require("kapi.core.lines").reader(0)
  local worker = task.spawn(function() return server:work() end)
  while true do
    local ok, line = pcall(reader.read, reader)
    if not ok then
      if errors.is(line, "interrupted") then error(line, 0) end
      fail(nil, INVALID_REQUEST, errors.message(line)) -- a line over the limit: said, and the rest goes on
    elseif line == nil then
      break
    else
      server:receive(line)
    end
  end
  server.closed = true
  if server.wake then server.wake() end
  pcall(worker.wait, worker)
  return 0
end

return M
