-- kapi help [COMMAND|RECIPE]
local cli = require "kapi.cli"

local M = {summary = "Show help for kapi, a command or a recipe"}

function M.arguments(parser)
  parser:argument("topic", "A command or recipe name"):args("?")
end

local function overview()
  local lines = {
    "kapi: automate the Kroger and 1WorldSync APIs from Lua scripts, recipes",
    "and an interactive prompt.",
    "",
    "Usage:",
    "  kapi COMMAND [args]",
    "  kapi [options] [script [args]]   run Lua, as the lua interpreter does",
    "  kapi                             the REPL (on a terminal)",
    "",
    "Commands:",
  }
  for _, name in ipairs(cli.commands) do
    lines[#lines + 1] = ("  %-10s %s"):format(name, cli.command(name).summary)
  end
  for _, line in ipairs {
    "",
    "Interpreter options:",
    "  -e CODE    run the Lua code CODE",
    "  -l MOD     require MOD into the global MOD (-l g=MOD: into g)",
    "  -i         open the REPL after the script",
    "  -v         print the version",
    "  -W         turn warnings on",
    "  -          run standard input",
    "  --verbose  show tracebacks of errors (also KAPI_DEBUG=1)",
    "",
    "`kapi help COMMAND` or `kapi COMMAND --help` shows one command;",
    "`kapi run RECIPE --help` one recipe. Documentation: docs/ and help() in the REPL.",
  } do lines[#lines + 1] = line end
  print(table.concat(lines, "\n"))
  return 0
end

function M.run(args)
  local topic = args.topic
  if not topic then return overview() end
  if cli.command(topic) then return cli.main({topic, "--help"}) end
  if require("kapi.recipes").find(topic) then return cli.main({"run", topic, "--help"}) end
  return cli.usage_error(("no command or recipe named '%s'"):format(topic),
                         "Usage: kapi help [COMMAND|RECIPE]")
end

return M
