-- The contract of kapi's Lua API (docs/usage.md): a script that calls a
-- kapi function wrongly gets an error naming what was wrong, never a Lua
-- runtime error from inside kapi ("attempt to index a nil value" at
-- kapi/http.lua:538), which the command line would report as a bug in
-- kapi. Every function of the API (what docs/api.md documents, as the
-- modules declare it) and every method of the objects they make is called
-- with arguments of the wrong kinds; each call must either work or raise
-- an error that is not a runtime error inside kapi's tree. A function
-- declared tomorrow is walked without a line added here.
local kapi = require "kapi"
local errors = require "kapi.errors"
local process = require "helpers.process"

local dir = process.tempdir()
local store = require "kapi.auth.store"

-- Values no function takes where it wants something else. No number or
-- string that could mean something (kapi.sleep(5) would sleep).
local WRONG = {true, print, {{}}, -1.5, "\0", {n = -1}}

-- Functions whose every call has an effect the walk must not have, or
-- that are not kapi's API: named with why.
local SKIP = {
  ["kapi.sandbox.start"] = "starts a server; its options are checked by kapi sandbox's walk",
  help = "prints; the REPL's tests show it",
}

local function is_bug(err)
  return errors.internal_module(err) ~= nil
      or (type(err) == "string" and err:find("^[^\n]-:%d+: attempt to ") ~= nil and err:find(process.source_dir, 1, true))
end

-- Calls fn with each wrong value in each of the first three places.
local function walk(name, fn, self)
  local found = {}
  for position = 1, 3 do
    for _, value in ipairs(WRONG) do
      local args = {n = position}
      args[position] = value
      local ok, err
      if self then
        ok, err = pcall(fn, self, table.unpack(args, 1, args.n))
      else
        ok, err = pcall(fn, table.unpack(args, 1, args.n))
      end
      if not ok and is_bug(err) then
        found[#found + 1] = ("%s(%s in argument %d): %s"):format(name, type(value), position, errors.message(err))
        break
      end
    end
  end
  return found
end

describe("kapi's Lua API", function()
  setup(function()
    store.directory = dir .. "/tokens"
    kapi.load_all()
  end)
  teardown(function()
    store.directory = nil
    process.cleanup(dir)
  end)

  it("answers every wrongly called function with an error that names the mistake", function()
    local bugs = {}
    local seen = {}
    for _, entry in ipairs(kapi.doc.list()) do
      local path = entry.name
      if not path:find(":", 1, true) then
        local value = path == "help" and require("kapi.repl").help or nil
        if not value then
          value = {kapi = kapi}
          for part in path:gmatch("[^.]+") do value = value and value[part] end
        end
        assert(type(value) == "function", "declared but not found: " .. path)
        if not SKIP[path] and not seen[value] then
          seen[value] = true
          for _, bug in ipairs(walk(path, value)) do bugs[#bugs + 1] = bug end
        end
      end
    end
    -- The objects the modules make, and their methods.
    local objects = {
      kroger = kapi.kroger.client {env = "sandbox"}, content1 = kapi.content1.client {env = "sandbox"},
      items = kapi.items.client {env = "sandbox"}, task = kapi.spawn(function() end),
      service = kapi.auth.service {base_url = "http://127.0.0.1:1", client_id = "a", client_secret = "b"},
      signer = kapi.auth.oneworldsync {app_id = "a", secret = "b"},
      problems = kapi.recipe.problems {report = function() end},
      iterator = kapi.paginate.offset {fetch = function() return {}, 0 end},
    }
    for name, object in pairs(objects) do
      local mt = getmetatable(object)
      local index = mt and (type(mt.__index) == "table" and mt.__index or mt)
      for method, fn in pairs(index or {}) do
        if type(method) == "string" and type(fn) == "function" and not method:match("^_") and not seen[fn] then
          seen[fn] = true
          for _, bug in ipairs(walk(name .. ":" .. method, fn, object)) do bugs[#bugs + 1] = bug end
        end
      end
    end
    table.sort(bugs)
    assert.are.same({}, bugs)
  end)
end)
