-- kapi completion bash|zsh|fish: a shell completion script, generated
-- from the parsers --help shows (kapi.completion). The hidden --spec run
-- [RECIPE] is what the scripts call while completing, for the recipes and
-- a recipe's options.
local M = {
  summary = "Print a shell completion script (bash, zsh or fish)",
  description = [[
Prints the script on stdout. make install and the package put it where
each shell looks; to load it yourself:
  eval "$(kapi completion bash)"          (in ~/.bashrc)
  kapi completion zsh > ~/.zfunc/_kapi    (a directory in $fpath)
  kapi completion fish > ~/.config/fish/completions/kapi.fish
Commands, options, their choices and files complete from the script;
recipes and their options, yours included, are asked of kapi as you
type, so a new recipe completes without a new script.]],
}

local USAGE = "Usage: kapi completion bash|zsh|fish"

function M.arguments(parser)
  parser:usage(USAGE)
  parser:argument("shell", "The shell: bash, zsh or fish"):choices {"bash", "zsh", "fish"}:args("?")
  parser:option("--spec", "The spec lines of run and a recipe (for the scripts)"):args("1-2"):hidden(true)
end

function M.run(args)
  local completion = require "kapi.completion"
  if args.spec then
    local spec = args.spec
    if spec[1] ~= "run" then return require("kapi.cli").usage_error("--spec: expected run [RECIPE]", USAGE) end
    local lines = completion.recipe_lines(spec[2])
    if #lines > 0 then io.write(table.concat(lines, "\n"), "\n") end
    return 0
  end
  if not args.shell then return require("kapi.cli").usage_error("which shell? bash, zsh or fish", USAGE) end
  io.write(completion.script(args.shell))
  return 0
end

return M
