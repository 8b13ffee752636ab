-- Structured errors: tables with kind, message and whatever else the layer
-- that raised them knows (status, url, attempts, ...). tostring gives a
-- one-line message. The metatable is shared with the C host, which raises
-- "interrupted", "cancelled" and "deadlock" errors of the same shape.
--
-- The kinds decide the exit status (docs/usage.md, "The contract"):
-- "usage" (a mistake on the command line) and "input" (input that cannot
-- be used: unreadable, malformed, empty, naming nothing that exists) exit
-- 2; "interrupted" 130; everything else (the work failed) 1.
local M = {}

local meta = debug.getregistry()["kapi.error"]
if not meta then
  meta = {}
  debug.getregistry()["kapi.error"] = meta
end
meta.__name = "kapi.error"
meta.__tostring = function(e)
  return e.message or e.kind or "error"
end
M.meta = meta

--- A new error object: errors.new("usage", "unknown recipe 'x'", {...}).
function M.new(kind, message, fields)
  local e = fields or {}
  e.kind, e.message = kind, message
  return setmetatable(e, meta)
end

--- Raises a usage error (exit code 2 when it reaches the command line).
function M.usage(message, level)
  error(M.new("usage", message), level or 2)
end

--- Raises an input error: what the user gave cannot be used (exit code 2).
function M.input(message, level)
  error(M.new("input", message), level or 2)
end

function M.is(e, kind)
  return getmetatable(e) == meta and (kind == nil or e.kind == kind)
end

local KINDS = {table = "a table", string = "a string", number = "a number", ["function"] = "a function",
               boolean = "true or false"}

--- Checks an argument of an API function: returns value, or raises the
--- usage error "WHAT must be a table, got boolean" (exit status 2) when its
--- type is not kind; a kind ending in "?" also takes nil. For the checks
--- every public function makes before it uses what it was given.
function M.check(value, kind, what)
  local t = type(value)
  if t == kind then return value end -- the usual case, before any string is made
  local optional = kind:sub(-1) == "?"
  local want = optional and kind:sub(1, -2) or kind
  if t == want or (optional and value == nil) then return value end
  local got = t == "string" and ('"' .. M.excerpt(value) .. '"') or t
  error(M.new("usage", ("%s must be %s%s, got %s"):format(what, KINDS[want] or want, optional and " or nil" or "", got)), 3)
end

-- A value as a message quotes it: a string quoted and cut short, a number
-- as it is, anything else by its type.
local function shown(value)
  if type(value) == "string" then return '"' .. M.excerpt(value) .. '"' end
  if type(value) == "number" then return M.excerpt(value) end
  return type(value)
end
M.shown = shown

--- Checks a whole-number argument: returns value, or raises the usage
--- error "WHAT must be a whole number from MIN to MAX, got X" (max nil: no
--- upper bound). nil is taken when `optional` is set.
function M.check_whole(value, min, max, what, optional)
  if value == nil and optional then return nil end
  if math.type(value) == "integer" and value >= min and (max == nil or value <= max) then return value end
  local range = max and ("from %d to %d"):format(min, max) or ("of at least %d"):format(min)
  error(M.new("usage", ("%s must be a whole number %s, got %s"):format(what, range, shown(value))), 3)
end

--- Checks a number argument as check_whole does, fractions allowed.
function M.check_number(value, min, max, what, optional)
  if value == nil and optional then return nil end
  if type(value) == "number" and value >= min and value <= max then return value end
  error(M.new("usage", ("%s must be a number from %s to %s, got %s"):format(what, min, max, shown(value))), 3)
end

--- Checks a table of options: an option the function does not know (a
--- typo: timout = 5) is refused, named, with a suggestion, rather than
--- ignored; one of the wrong type is refused as errors.check refuses it.
--- `kinds` maps each option to the type it takes (as errors.check takes
--- it; "any" for any value); `who` names the function ("sandbox.start").
--- Returns opts.
function M.check_options(opts, kinds, who)
  for name, value in pairs(opts) do
    local kind = kinds[name]
    if kind == nil then
      local names = {}
      for known in pairs(kinds) do names[#names + 1] = known end
      table.sort(names)
      local guess = type(name) == "string" and require("kapi.parsing").suggest(name, names)
      local hint = guess and ("did you mean %s?"):format(guess) or ("options: " .. table.concat(names, ", "))
      error(M.new("usage", ("%s: unknown option %s (%s)"):format(who, type(name) == "string" and M.excerpt(name)
                 or shown(name), hint)), 2)
    end
    if kind ~= "any" then M.check(value, kind, who .. ": " .. name) end
  end
  return opts
end

--- True for the errors that are the user's to fix before anything can be
--- done: usage and input errors, and errors marked setup (no credentials
--- configured, nobody logged in).
function M.is_input(e)
  return M.is(e, "usage") or M.is(e, "input") or (M.is(e) and e.setup == true)
end

--- The one-line text of any error value.
function M.message(e)
  if type(e) == "string" then return e end
  -- As Lua's own interpreter does: a number raised is its text.
  if type(e) == "number" then return tostring(e) end
  local mt = getmetatable(e)
  if mt and mt.__tostring then return tostring(e) end
  return ("(error object is a %s value)"):format(type(e))
end

--- The exit status a command line gives for an error.
function M.exit_code(e)
  if M.is(e, "interrupted") then return 130 end
  if M.is_input(e) then return 2 end
  return 1
end

-- Internal errors ---------------------------------------------------------------

local tree -- kapi's own Lua tree, "/.../scripts/"

local function kapi_tree()
  tree = tree or (require("kapi.core").script_dir .. "/")
  return tree
end

-- What Lua itself says when code goes wrong ("attempt to index a nil
-- value", "bad argument #1 to 'ipairs'"): inside kapi, a bug.
local RUNTIME = {"^attempt to ", "^bad argument #", "^table index is ", "^invalid value %(",
                 "^invalid key to 'next'", "^stack overflow", "^C stack overflow", "^string length overflow",
                 "^number has no integer representation", "^wrong number of arguments", "^'for' ",
                 "^bad 'for' ", "^invalid order function", "^attempt to compare", "^module '.*' not found"}

local function is_runtime(message)
  for _, pattern in ipairs(RUNTIME) do
    if message:find(pattern) then return true end
  end
  return false
end

--- The module of kapi's own Lua tree a Lua error position names
--- ("/.../scripts/kapi/items.lua:39: ..." -> "kapi.items"), and the message
--- after the position; nil when the message does not start with one.
function M.position_in_tree(e)
  if type(e) ~= "string" then return nil end
  local dir = kapi_tree()
  if e:sub(1, #dir) ~= dir then return nil end
  local file, rest = e:sub(#dir + 1):match("^([%w_/%-]+)%.lua:%d+: (.*)$")
  if not file then return nil end
  return (file:gsub("/init$", ""):gsub("/", ".")), rest
end

--- The module for a bug: a Lua runtime error (not a message kapi meant to
--- give) raised in kapi's own code, named by its position or, for one that
--- has none (a C function failing under it), by `module`, the Lua module
--- that was running. nil for everything else.
function M.internal_module(e, module)
  if type(e) ~= "string" then return nil end
  local named, rest = M.position_in_tree(e)
  if named then return is_runtime(rest) and named or nil end
  if module and not e:find("^[^\n]-:%d+: ") and is_runtime(e) then return module end
end

--- The `module` internal_module takes, read from a traceback (the text
--- debug.traceback gives) instead of the live stack, for an error reported
--- once its stack is gone (a task's, in the REPL): the module of the first
--- Lua function on it when that is in kapi's tree; nil when the error
--- was raised by error() (a message meant to be given) or elsewhere.
function M.traceback_module(traceback)
  if type(traceback) ~= "string" then return nil end
  for line in traceback:gmatch("[^\n]+") do
    local where = line:match("^%s*(.-): in ")
    if where == "[C]" then
      if line:find(" in function 'error'", 1, true) then return nil end
    elseif where then
      return (M.position_in_tree(where .. ": ."))
    end
  end
end

--- The words for an error inside kapi's own code (a bug), whose Lua
--- message would mean nothing to a user: which module, and what to do.
function M.internal_message(module)
  return ("internal error in %s (a bug in kapi; run again with --verbose for the details, and please report it)")
         :format((module:gsub("^recipes%.", "recipe ")))
end

--- The one line an error is reported with: its message without a position
--- in kapi's own tree, or, for a bug inside kapi, M.internal_message; the
--- Lua message as it is with verbose. `module`: see internal_module.
function M.report_line(e, verbose, module)
  if verbose then return M.line(M.message(e)) end
  local internal = M.internal_module(e, module)
  if internal then return M.line(M.internal_message(internal)) end
  local _, rest = M.position_in_tree(e)
  return M.line(rest or M.message(e))
end

M.EXCERPT = 60
M.LINE = 400

local ESCAPES = {["\n"] = "\\n", ["\r"] = "\\r", ["\t"] = "\\t"}

-- text on one line (control characters as \n, \t or \xNN, bytes that are
-- not UTF-8 as \xNN), cut in the middle to at most max characters; the
-- full length is said when `tell` is set.
local function shorten(text, max, tell)
  text = text:gsub("[%z\1-\31\127]", function(c) return ESCAPES[c] or ("\\x%02X"):format(c:byte()) end)
  local length = utf8.len(text)
  if not length then
    text = text:gsub("[\128-\255]", function(c) return ("\\x%02X"):format(c:byte()) end)
    length = #text
  end
  if length <= max then return text end
  local head = utf8.offset(text, max // 2 + 1)
  local tail = utf8.offset(text, -(max // 3))
  return text:sub(1, head - 1) .. "..." .. text:sub(tail) .. (tell and (" (%d characters)"):format(length) or "")
end

--- A value as it may be quoted in a message: one line, at most `max`
--- characters (default 60), cut in the middle with "..." and the full
--- length. A 100,000-digit argument must not make a 100 KB error line.
function M.excerpt(value, max)
  return shorten(tostring(value), max or M.EXCERPT, true)
end

--- A message as it is printed: one line of at most 400 characters.
function M.line(text)
  return shorten(tostring(text), M.LINE, false)
end

return M
