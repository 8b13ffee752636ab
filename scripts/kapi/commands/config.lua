-- kapi config list|get|set|unset|path: the settings kapi keeps for you
-- (the preferred store, the environment, a partner app), as gh config
-- does. Secrets are never settings: they come from the environment or
-- the config file, never from a command line.
local config = require "kapi.config"
local errors = require "kapi.errors"

local M = {summary = "Show and change kapi's settings (the preferred store, the environment, ...)"}

local function key_names()
  local names = {}
  for name in pairs(config.SETTINGS) do names[#names + 1] = name end
  table.sort(names)
  return names
end

function M.arguments(parser)
  parser:command_target("action")
  parser:require_command(true)
  parser:usage("Usage: kapi config COMMAND [args]   (COMMAND: list, get, set, unset or path)")
  local keys = table.concat(key_names(), ", ")
  local list = parser:command("list", "Show every setting, its value and where it comes from")
  list:flag("--json", "Print a JSON array of {key, value, source, help}")
  parser:command("get", "Print one setting's value (nothing when it is not set)")
    :argument("key", "The setting: " .. keys):argname("KEY")
  local set = parser:command("set", "Set a setting, kept in kapi's settings file")
  set:argument("key", "The setting: " .. keys):argname("KEY")
  set:argument("value", "Its value"):argname("VALUE")
  parser:command("unset", "Remove a setting from kapi's settings file")
    :argument("key", "The setting: " .. keys):argname("KEY")
  parser:command("path", "Print where the config file and the settings file are")
end

local function check_key(key)
  if config.SETTINGS[key] then return key end
  local secret = key:find("secret") or key:find("token") or key:find("client_id") or key:find("app_id")
  if secret then
    errors.usage(("%s: credentials are not settings; give them in the environment (KROGER_CLIENT_ID, ...) or in %s")
                 :format(errors.excerpt(key), config.path()), 0)
  end
  errors.usage(("no setting named %s%s (settings: %s)"):format(errors.excerpt(key),
    require("kapi.parsing").did_you_mean(key, key_names()), table.concat(key_names(), ", ")), 0)
end

local function shown(value)
  if value == nil then return "" end
  return tostring(value)
end

local actions = {}

function actions.list(args)
  local rows = {}
  for _, key in ipairs(key_names()) do
    local value, source = config.value(key)
    rows[#rows + 1] = {key = key, value = value, source = source, help = config.SETTINGS[key].help}
  end
  if args.json then
    local json = require "kapi.json"
    for _, r in ipairs(rows) do
      r.value = r.value == nil and json.null or r.value
      r.source = r.source or json.null
    end
    io.write(json.encode(json.array(rows), {sorted = true}), "\n")
    return 0
  end
  for _, r in ipairs(rows) do r.shown = shown(r.value) end
  local recipe = require "kapi.recipe"
  io.write(recipe.render_table(rows, {{key = "key", title = "SETTING"}, {key = "shown", title = "VALUE"},
                                      {key = "source", title = "FROM", wrap = true},
                                      {key = "help", title = "WHAT IT IS", wrap = true}},
                               {width = recipe.width(1)}))
  return 0
end

function actions.get(args)
  local value = config.value(check_key(args.key))
  if value ~= nil then print(shown(value)) end
  return 0
end

function actions.set(args)
  local key = check_key(args.key)
  local value = config.SETTINGS[key].check(args.value)
  if value == nil then
    errors.usage(("%s %s: expected %s"):format(key, errors.excerpt(args.value), config.SETTINGS[key].help), 0)
  end
  config.save_setting(key, value)
  local now, source = config.value(key)
  if source and not source:find(config.settings_path(), 1, true) then
    io.stderr:write(("kapi: note: %s sets it too (%s), and wins over the settings file\n"):format(source, shown(now)))
  end
  return 0
end

function actions.unset(args)
  config.save_setting(check_key(args.key), nil)
  return 0
end

function actions.path()
  print("config file:   " .. config.path())
  print("settings file: " .. config.settings_path())
  return 0
end

function M.run(args)
  return actions[args.action](args)
end

return M
