-- kapi repl: the interactive prompt.
local M = {summary = "Start the interactive Lua prompt with kapi loaded"}

function M.arguments(parser)
  parser:flag("--no-history", "Neither read nor write the history file")
end

function M.run(args)
  return require("kapi.repl").run{banner = true, history = not args.no_history}
end

return M
