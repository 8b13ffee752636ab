-- kapi run RECIPE|FILE [args]: a recipe by name, or a Lua file (a recipe
-- file or a plain script).
local cli = require "kapi.cli"
local parsing = require "kapi.parsing"
local recipes = require "kapi.recipes"
local errors = require "kapi.errors"
local log = require "kapi.log"
local input = require "kapi.input"

local M = {
  summary = "Run a recipe by name, or a Lua file",
  raw = true, -- everything after the name belongs to the recipe
}

local usage = "Usage: kapi run RECIPE|FILE [args...]   (kapi recipes lists them)"

local function help()
  print(usage)
  print()
  print("Runs the recipe RECIPE, looked up in each KAPI_PATH directory's recipes/,")
  print("then ~/.config/kapi/recipes/, then the recipes kapi ships; or the Lua")
  print("file FILE. `kapi run RECIPE --help` shows a recipe's own options.")
  return 0
end

local function is_path(target)
  return target:find("/", 1, true) or target:match("%.lua$")
end

--- The parser of a recipe's command line, as `kapi run NAME --help` shows it.
function M.parser(recipe, name)
  local parser = parsing.parser("kapi run " .. name, recipe.summary, recipe.description)
  if recipe.arguments then recipe.arguments(parser) end
  return parsing.finish_parser(parser)
end

-- The exit status for what a recipe's run returned: nil or true 0, false
-- 1, or a whole number a shell reads as a status of the recipe's own (0 to
-- 125, or 130 for Ctrl-C; 126 to 255 mean "not run" or "killed by a
-- signal" to a shell, and anything else would be cut to a byte: 256 would
-- pass for 0). Anything else is a bug in the recipe: said, status 1.
local function exit_status(result, name)
  if result == nil or result == true then return 0 end
  if result == false then return 1 end
  local n = math.type(result) and math.tointeger(result)
  if n and ((n >= 0 and n <= 125) or n == 130) then return n end
  io.stderr:write(("kapi: %s: run returned %s, not an exit status (nil, true, false, 0 to 125 or 130)\n")
                  :format(errors.excerpt(name), errors.shown(result)))
  return 1
end

--- Parses args for the recipe and runs it: its exit status (also for
--- kapi mcp, which runs recipes as tools).
local function run_recipe(recipe, name, args)
  local parsed, status = parsing.parse(M.parser(recipe, name), args)
  if not parsed then return status end
  if parsed.quiet then log.quiet = true end
  return exit_status(recipe.run(parsed), name)
end
M.run_recipe = run_recipe

-- A file that returns a recipe runs as one; any other file is a script and
-- has already done its work when its chunk returned.
local function run_file(path, args)
  local why = input.unreadable(path)
  if why then errors.input(("cannot open %s (%s)"):format(errors.excerpt(path, 120), why), 0) end
  local chunk, load_err = loadfile(path)
  if not chunk then error(load_err, 0) end
  _G.arg = table.move(args, 1, #args, 1, {[0] = path})
  local value = chunk(table.unpack(args))
  if type(value) == "table" and value.run ~= nil then
    local recipe, err = recipes.check(value, path, false)
    if not recipe then error(err, 0) end
    return run_recipe(recipe, path, args)
  end
  return 0
end

local function names()
  local out = {}
  for _, r in ipairs(recipes.list()) do out[#out + 1] = r.name end
  return out
end

function M.run(args)
  local target = args[1]
  if not target then return cli.usage_error("which recipe? (kapi recipes lists them)", usage) end
  if target == "-h" or target == "--help" then return help() end
  local rest = table.move(args, 2, #args, 1, {})
  if is_path(target) then return run_file(target, rest) end
  local path = recipes.find(target)
  if not path then
    local guess = parsing.suggest(target, names())
    return cli.usage_error(("no recipe named '%s'%s (kapi recipes lists them)")
                           :format(errors.excerpt(target), guess and (" (did you mean '%s'?)"):format(guess) or ""),
                           usage)
  end
  -- A recipe calls services: libcurl and OpenSSL are opened while it
  -- reads its arguments and input (not for its --help).
  if not (rest[1] == "-h" or rest[1] == "--help") then
    require("kapi.core").open_ahead("kapi.core.crypto", "kapi.core.http")
  end
  local recipe, err = recipes.load(path)
  if not recipe then error(err, 0) end
  return run_recipe(recipe, target, rest)
end

return M
