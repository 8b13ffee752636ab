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

local HELP_USAGE = "Usage: kapi help [COMMAND [SUBCOMMAND] | RECIPE]"

local function no_topic(text, names, word)
  local errors = require "kapi.errors"
  return cli.usage_error(("no command or recipe named '%s'%s"):format(errors.excerpt(text),
                         require("kapi.parsing").did_you_mean(word, names)), HELP_USAGE)
end

-- The words after a topic that names all there is to name.
local function extra(word)
  return cli.usage_error(("unexpected argument '%s' after the topic"):format(require("kapi.errors").excerpt(word)),
                         HELP_USAGE)
end

local function subcommand_names(name)
  local parser = require("kapi.parsing").command_parser(name)
  local names = {}
  for _, sub in ipairs(parser and require("kapi.parsing").describe(parser).commands or {}) do
    names[#names + 1] = sub.name:match("(%S+)$")
  end
  return names
end

function M.run(args)
  local words = args.topic or {}
  if #words == 0 then return overview() end
  local recipes = require "kapi.recipes"
  if cli.command(words[1]) then
    local subs = subcommand_names(words[1])
    local takes = words[1] == "run" and "recipe" or (#subs > 0 and "subcommand")
    if words[2] and not takes then return extra(words[2]) end
    if words[2] and takes == "recipe" and not recipes.find(words[2]) and not words[2]:find("/") then
      local names = {}
      for _, r in ipairs(recipes.list()) do names[#names + 1] = r.name end
      return no_topic("run " .. words[2], names, words[2])
    end
    if words[2] and takes == "subcommand" then
      local known = false
      for _, sub in ipairs(subs) do known = known or sub == words[2] end
      if not known then return no_topic(words[1] .. " " .. words[2], subs, words[2]) end
    end
    if words[3] then return extra(words[3]) end
    local line = {words[1], words[2]}
    line[#line + 1] = "--help"
    return cli.main(line)
  end
  if recipes.find(words[1]) then
    if words[2] then return extra(words[2]) end
    return cli.main({"run", words[1], "--help"})
  end
  local names = {}
  for _, name in ipairs(cli.commands) do names[#names + 1] = name end
  for _, r in ipairs(recipes.list()) do names[#names + 1] = r.name end
  return no_topic(table.concat(words, " "), names, words[1])
end

return M
