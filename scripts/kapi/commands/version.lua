-- kapi version: what this kapi is built from.
local core = require "kapi.core"

local M = {summary = "Print the versions of kapi and what it embeds"}

function M.run()
  print("kapi " .. core.version)
  print(core.lua_version)
  local ok, http = pcall(require, "kapi.http")
  if ok then print(http.version()) end
  print("scripts: " .. core.script_dir)
  return 0
end

return M
