-- kapi help [COMMAND|RECIPE|TOPIC]
local cli = require "kapi.cli"

local M = {summary = "Show help for kapi, a command, a recipe or a topic (environment)"}

--- The options of kapi as a Lua interpreter (kapi.cli reads them), for
--- this help, kapi(1) and the completions.
M.INTERPRETER_OPTIONS = {
  {names = {"-e"}, argname = "CODE", help = "run the Lua code CODE"},
  {names = {"-l"}, argname = "MOD", help = "require MOD into the global MOD (-l g=MOD: into g)"},
  {names = {"-i"}, help = "open the REPL after the script"},
  {names = {"-v", "--version"}, help = "print the version"},
  {names = {"-W"}, help = "turn warnings on"},
  {names = {"-"}, help = "run standard input"},
  {names = {"--verbose"}, help = "show tracebacks of errors (also KAPI_DEBUG=1)"},
  {names = {"-h", "--help"}, help = "show this help"},
}

--- Help topics that are neither commands nor recipes.
M.TOPICS = {
  {name = "environment", summary = "The environment variables kapi reads",
   text = function(width) return require("kapi.environment").text(width) end},
}

function M.arguments(parser)
  parser:argument("topic", "A command (and its subcommand: auth login), a recipe (run preflight, or preflight), "
                  .. "or environment"):args("*"):argname("TOPIC")
  parser:usage("Usage: kapi help [COMMAND [SUBCOMMAND] | RECIPE | environment]")
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
  local width = 10
  for _, name in ipairs(cli.commands) do width = math.max(width, #name + 1) end
  for _, name in ipairs(cli.commands) do
    lines[#lines + 1] = ("  %-" .. width .. "s %s"):format(name, cli.command(name).summary)
  end
  lines[#lines + 1] = ""
  lines[#lines + 1] = "Interpreter options:"
  for _, o in ipairs(M.INTERPRETER_OPTIONS) do
    if o.names[1] ~= "-h" then
      lines[#lines + 1] = ("  %-" .. width .. "s %s"):format(o.names[1] .. (o.argname and " " .. o.argname or ""), o.help)
    end
  end
  for _, line in ipairs {
    "",
    "`kapi help COMMAND` or `kapi COMMAND --help` shows one command;",
    "`kapi run RECIPE --help` one recipe; `kapi help environment` the environment",
    "variables. Documentation: man kapi, docs/ and help() in the REPL.",
  } do lines[#lines + 1] = line end
  print(table.concat(lines, "\n"))
  return 0
end

local HELP_USAGE = "Usage: kapi help [COMMAND [SUBCOMMAND] | RECIPE | environment]"

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
  for _, topic in ipairs(M.TOPICS) do
    if topic.name == words[1] then
      if words[2] then return extra(words[2]) end
      print(topic.text(require("kapi.output").width(1)))
      return 0
    end
  end
  local names = {}
  for _, name in ipairs(cli.commands) do names[#names + 1] = name end
  for _, topic in ipairs(M.TOPICS) do names[#names + 1] = topic.name end
  for _, r in ipairs(recipes.list()) do names[#names + 1] = r.name end
  return no_topic(table.concat(words, " "), names, words[1])
end

return M
