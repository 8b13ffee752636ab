-- Where kapi keeps things: XDG base directories, the Lua tree it runs
-- from, and the directories searched for recipes.
local core = require "kapi.core"

local M = {}

local function home()
  return os.getenv("HOME") or "."
end

local function xdg(variable, fallback)
  local dir = os.getenv(variable)
  if dir and dir:sub(1, 1) == "/" then return dir end
  return home() .. "/" .. fallback
end

function M.config_dir() return xdg("XDG_CONFIG_HOME", ".config") .. "/kapi" end
function M.state_dir() return xdg("XDG_STATE_HOME", ".local/state") .. "/kapi" end
function M.history_file() return M.state_dir() .. "/history" end

--- Directories named by KAPI_PATH (colon-separated), in order.
function M.kapi_path()
  local dirs = {}
  for dir in (os.getenv("KAPI_PATH") or ""):gmatch("[^:]+") do
    dirs[#dirs + 1] = dir
  end
  return dirs
end

--- Where recipes are looked for, first match wins: each KAPI_PATH
--- directory's recipes/, the user's ~/.config/kapi/recipes/, then the
--- recipes kapi ships.
function M.recipe_dirs()
  local dirs = {}
  for _, dir in ipairs(M.kapi_path()) do dirs[#dirs + 1] = dir .. "/recipes" end
  dirs[#dirs + 1] = M.config_dir() .. "/recipes"
  dirs[#dirs + 1] = core.script_dir .. "/recipes"
  return dirs
end

--- Puts KAPI_PATH directories in front of the module search path, so
--- their modules (and recipes' helpers) can be required.
function M.install_module_path()
  local extra = {}
  for _, dir in ipairs(M.kapi_path()) do
    extra[#extra + 1] = dir .. "/?.lua;" .. dir .. "/?/init.lua"
  end
  if #extra > 0 then
    package.path = table.concat(extra, ";") .. ";" .. package.path
  end
end

return M
