-- kapi help [COMMAND|RECIPE]
local cli = require "kapi.cli"

local M = {summary = "Show help for kapi, a command or a recipe"}

function M.arguments(parser)
  parser:argument("topic", "A command (and its subcommand: auth login), or a recipe (run preflight, or preflight)")
        :args("*"):argname("TOPIC")
  parser:usage("Usage: kapi help [COMMAND [SUBCOMMAND] | RECIPE]")
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
  local topic = args.topic or {}
  if #topic == 0 then return overview() end
  local words = table.move(topic, 1, #topic, 1, {})
  if cli.command(words[1]) then
    words[#words + 1] = "--help"
    return cli.main(words)
  end
  if #words == 1 and require("kapi.recipes").find(words[1]) then return cli.main({"run", words[1], "--help"}) end
  local names = {}
  for _, name in ipairs(cli.commands) do names[#names + 1] = name end
  for _, r in ipairs(require("kapi.recipes").list()) do names[#names + 1] = r.name end
  local errors = require "kapi.errors"
  return cli.usage_error(("no command or recipe named '%s'%s"):format(errors.excerpt(table.concat(words, " ")),
                         require("kapi.parsing").did_you_mean(words[1], names)),
                         "Usage: kapi help [COMMAND [SUBCOMMAND] | RECIPE]")
end

return M
