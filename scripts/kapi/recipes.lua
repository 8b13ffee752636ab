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

local function check_recipe(value, path)
  if type(value) ~= "table" or type(value.run) ~= "function" then
    return nil, path .. ": not a recipe (it must return a table with a run function)"
  end
  if type(value.summary) ~= "string" then
    return nil, path .. ": the recipe has no summary"
  end
  return value
end

--- Loads the recipe at path: the recipe table, or nil and why.
function M.load(path)
  local chunk, err = loadfile(path)
  if not chunk then return nil, err end
  local ok, value = pcall(chunk)
  if not ok then return nil, errors.message(value) end
  return check_recipe(value, path)
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
                         summary = recipe and recipe.summary or ("(broken: " .. err .. ")")}
      end
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

return M
