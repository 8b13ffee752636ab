-- kapi completion bash|zsh|fish: a shell completion script, generated
-- from the parsers --help shows.
local M = {summary = "Print a shell completion script (bash, zsh or fish)"}

function M.arguments(parser)
  parser:argument("shell", "The shell: bash, zsh or fish"):choices {"bash", "zsh", "fish"}
end

function M.run(args)
  return require("kapi.cli").usage_error(("completion for %s is not built yet"):format(args.shell))
end

return M
