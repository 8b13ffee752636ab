-- Finding, listing and loading recipes. A recipe is a Lua file that
-- returns a table: {summary = "...", arguments = function(parser) end,
-- run = function(args) ... end}. Loading it must not do any work: listing
-- recipes loads every one of them.
local fs = require "kapi.core.fs"
local paths = require "kapi.paths"
local errors = require "kapi.errors"

local M = {}

local function readable(path)
  local f = io.open(path, "r")
  if f then f:close() end
  return f ~= nil
end

--- The path of the recipe called name, or nil.
function M.find(name)
  for _, dir in ipairs(paths.recipe_dirs()) do
    local path = dir .. "/" .. name .. ".lua"
    if readable(path) then return path end
  end
end

-- The fields of a recipe table: what each must be, and whether it must be
-- there (a recipe found by name is listed by its summary; a file run by
-- its path needs only a run function).
local FIELDS = {
  {"run", "function"},
  {"summary", "string", named = true},
  {"description", "string"},
  {"arguments", "function"},
  {"keys", "table"}, -- the keys of its --json rows, in order (kapi mcp's outputSchema)
}
local KINDS = {["function"] = "a function", string = "a string", table = "a list of key names"}

--- Checks the table a recipe file returned: the recipe, or nil and an
--- input error (exit status 2) naming the file and the field that is
--- wrong. `named`: found by its name (so it must have a summary).
function M.check(value, path, named)
  if type(value) ~= "table" or value.run == nil then
    return nil, errors.new("input", path .. ": not a recipe (it must return a table with a run function)")
  end
  for _, field in ipairs(FIELDS) do
    local name, kind = field[1], field[2]
    local v = value[name]
    if v == nil and field.named and named then
      return nil, errors.new("input", ("%s: the recipe has no %s (the line kapi recipes shows for it)"):format(path, name))
    elseif v ~= nil and type(v) ~= kind then
      return nil, errors.new("input", ("%s: %s must be %s, got %s"):format(path, name, KINDS[kind], errors.shown(v)))
    end
  end
  return value
end

--- Loads the recipe found at path: the recipe table, or nil and why (the
--- message of an error loading or running the file, or the input error of
--- M.check).
function M.load(path)
  local chunk, err = require("kapi.core").loadfile(path) -- compiled, for kapi's own
  if not chunk then return nil, err end
  local ok, value = pcall(chunk)
  if not ok then return nil, errors.message(value) end
  return M.check(value, path, true)
end

--- Every recipe that `kapi run NAME` can reach, sorted by name: {name,
--- summary, path}. A broken recipe is listed with its problem.
function M.list()
  local found, out = {}, {}
  for _, dir in ipairs(paths.recipe_dirs()) do
    for _, file in ipairs(fs.list(dir) or {}) do
      local name = file:match("^(.+)%.lua$")
      if name and not found[name] then
        local path = dir .. "/" .. file
        local recipe, err = M.load(path)
        found[name] = true
        out[#out + 1] = {name = name, path = path,
                         summary = recipe and recipe.summary or ("(broken: " .. errors.message(err) .. ")")}
      end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

return M
