-- The manual pages, derived from what --help, help() and kapi help
-- environment show, never written twice: kapi(1), kapi-COMMAND(1) for
-- each command, kapi-recipes(7) for the recipes kapi ships and kapi-lua(3)
-- for the Lua API. Written as scdoc(5) sources, which the build renders
-- with scdoc (packaging/generate.lua).
local cli = require "kapi.cli"
local core = require "kapi.core"
local parsing = require "kapi.parsing"

local M = {}

local WIDTH = 80

-- Text ------------------------------------------------------------------------------

--- text with scdoc's formatting characters made literal.
function M.escape(text)
  return (tostring(text):gsub("[\\*_]", "\\%0"))
end

-- An escaped line that must not start a list, table, header, comment
-- or literal block.
local function safe_start(line)
  if line:match("^[-#;|:%[%]`]") then return "\\" .. line end
  return line
end

-- text wrapped to width; a line never starts with . or ' (roff would take
-- it for a request, and scdoc leaves that to the writer): such a word
-- stays on the line before.
local function wrap(text, width)
  local out = {}
  for _, line in ipairs(require("kapi.output").wrap(text, width or WIDTH)) do
    if #out > 0 and line:match("^[.']") then out[#out] = out[#out] .. " " .. line else out[#out + 1] = line end
  end
  return out
end

-- Prose (paragraphs separated by blank lines, lines wrapped by hand) as
-- scdoc paragraphs; indented lines (examples) kept as they are, indented.
local function prose(text, indent)
  indent = indent or ""
  local out = {}
  for paragraph in ((text or ""):gsub("\r", "") .. "\n\n"):gmatch("(.-)\n%s*\n") do
    if paragraph:find("%S") then
      local plain, literal = {}, {}
      local function flush_plain()
        if #plain == 0 then return end
        for _, part in ipairs(wrap(table.concat(plain, " "), WIDTH - 8)) do
          out[#out + 1] = indent .. safe_start(M.escape(part))
        end
        plain = {}
      end
      for line in (paragraph .. "\n"):gmatch("([^\n]*)\n") do
        local lead, rest = line:match("^(%s*)(.-)%s*$")
        if #lead >= 2 then
          flush_plain()
          literal[#literal + 1] = indent .. "\t" .. safe_start(M.escape(rest)) .. " ++"
        else
          if #literal > 0 then
            literal[#literal] = literal[#literal]:gsub(" %+%+$", "")
            for _, l in ipairs(literal) do out[#out + 1] = l end
            literal = {}
          end
          plain[#plain + 1] = rest
        end
      end
      flush_plain()
      if #literal > 0 then
        literal[#literal] = literal[#literal]:gsub(" %+%+$", "")
        for _, l in ipairs(literal) do out[#out + 1] = l end
      end
      out[#out + 1] = ""
    end
  end
  return out
end

local function add(out, lines)
  for _, l in ipairs(type(lines) == "table" and lines or {lines}) do out[#out + 1] = l end
end

local function section(out, title)
  if out[#out] ~= "" then out[#out + 1] = "" end
  out[#out + 1] = "# " .. title
  out[#out + 1] = ""
end

-- Parsers -----------------------------------------------------------------------------

local function value_text(element)
  if element.choices then
    local parts = {}
    for i, c in ipairs(element.choices) do parts[i] = "_" .. M.escape(c) .. "_" end
    return table.concat(parts, "|")
  end
  return "_" .. M.escape(element.argname or (element.name or "VALUE"):upper()) .. "_"
end

local function argument_text(a)
  local v = value_text(a)
  if a.max > 1 then v = v .. "..." end
  if a.min == 0 then v = "[" .. v .. "]" end
  return v
end

local function synopsis(words, d)
  local parts = {"*" .. M.escape(words) .. "*"}
  if #d.commands > 0 then
    parts[#parts + 1] = "_COMMAND_"
  end
  local visible = 0
  for _, o in ipairs(d.options) do
    if not o.hidden and o.names[#o.names] ~= "--help" then visible = visible + 1 end
  end
  if visible > 0 then parts[#parts + 1] = "[_OPTIONS_]" end
  for _, a in ipairs(d.arguments) do parts[#parts + 1] = argument_text(a) end
  return table.concat(parts, " ")
end

local function option_entry(o)
  local names = {}
  for i, n in ipairs(o.names) do names[i] = "*" .. M.escape(n) .. "*" end
  local head = table.concat(names, ", ")
  if o.takes_value then
    head = head .. (o.value_optional and ("[=" .. value_text(o) .. "]") or (" " .. value_text(o)))
  end
  local help = o.help or ""
  if o.default and not help:find("default", 1, true) then help = help .. " (default: " .. o.default .. ")" end
  if o.repeatable and not help:find("repeat", 1, true) then help = help .. " (may be repeated)" end
  if o.required then help = help .. " (required)" end
  local out = {head}
  for _, part in ipairs(wrap(help, WIDTH - 8)) do out[#out + 1] = "\t" .. safe_start(M.escape(part)) end
  out[#out + 1] = ""
  return out
end

local function options_of(out, d)
  for _, o in ipairs(d.options) do
    if not o.hidden then add(out, option_entry(o)) end
  end
end

local function arguments_of(out, d)
  for _, a in ipairs(d.arguments) do
    out[#out + 1] = value_text(a)
    for _, part in ipairs(wrap((a.help or "") .. (a.max > 1 and " (any number)" or ""), WIDTH - 8)) do
      out[#out + 1] = "\t" .. safe_start(M.escape(part))
    end
    out[#out + 1] = ""
  end
end

-- The body of a parser's description: synopsis and text first, then its
-- arguments, options and subcommands (as subsections).
local function parser_sections(out, words, d)
  if #d.arguments > 0 then
    section(out, "ARGUMENTS")
    arguments_of(out, d)
  end
  local own = 0
  for _, o in ipairs(d.options) do if not o.hidden then own = own + 1 end end
  if own > 0 then
    section(out, "OPTIONS")
    options_of(out, d)
  end
  if #d.commands > 0 then
    section(out, "COMMANDS")
    for _, c in ipairs(d.commands) do
      local name = words .. " " .. c.name:match("(%S+)$")
      out[#out + 1] = "## " .. M.escape(name)
      out[#out + 1] = ""
      out[#out + 1] = synopsis(name, c)
      out[#out + 1] = ""
      add(out, prose(c.summary))
      if c.description then add(out, prose(c.description)) end
      if #c.arguments > 0 then arguments_of(out, c) end
      options_of(out, c)
    end
  end
end

local function preamble(name, section_number)
  return ('%s(%s) "kapi %s" "kapi manual"'):format(name, section_number, core.version)
end

-- Pages -----------------------------------------------------------------------------------

local RAW = {
  run = {
    synopsis = {"*kapi run* _RECIPE_ [_ARGS_...]", "*kapi run* _FILE_ [_ARGS_...]"},
    text = [[
Runs the recipe RECIPE, looked up in each KAPI_PATH directory's recipes/,
then in $XDG_CONFIG_HOME/kapi/recipes/ (~/.config/kapi/recipes/), then among
the recipes kapi ships; or the Lua file FILE, a recipe file or a plain
script. Everything after the name belongs to the recipe: kapi run RECIPE
--help shows its options. kapi recipes lists the recipes found; the ones
kapi ships are described with their options in kapi-recipes(7).]],
    recipes = true,
  },
  test = {
    synopsis = {"*kapi test* [_BUSTED OPTIONS_] [_FILE_...]"},
    text = [[
Runs busted specs inside kapi, so that they can use kapi's bindings, which
exist only there. Every busted option works (busted --help). With no files,
busted reads ./.busted or runs ./spec. A missing spec file or directory is a
usage error (exit status 2).]],
  },
}

local function shipped_recipes()
  local recipes = require "kapi.recipes"
  local fs = require "kapi.core.fs"
  local dir = core.script_dir .. "/recipes"
  local out = {}
  for _, file in ipairs(fs.list(dir) or {}) do
    local name = file:match("^(.+)%.lua$")
    if name then
      local recipe = assert(recipes.load(dir .. "/" .. file))
      out[#out + 1] = {name = name, recipe = recipe}
    end
  end
  table.sort(out, function(a, b) return a.name < b.name end)
  return out
end

local function see_also(out, pages)
  section(out, "SEE ALSO")
  local refs = {}
  for i, p in ipairs(pages) do refs[i] = "*" .. M.escape(p[1]) .. "*(" .. p[2] .. ")" end
  add(out, table.concat(refs, ", "))
end

--- The page of `kapi NAME`: its scdoc source.
function M.command_page(name)
  local command = cli.command(name)
  local out = {preamble("KAPI-" .. name:upper(), 1), "", "# NAME", "", "kapi-" .. name .. " - "
               .. M.escape(command.summary), ""}
  section(out, "SYNOPSIS")
  local raw = RAW[name]
  local d = not command.raw and parsing.describe(parsing.command_parser(name))
  if raw then
    for _, s in ipairs(raw.synopsis) do add(out, {s, ""}) end
  else
    add(out, {synopsis("kapi " .. name, d), ""})
    for _, c in ipairs(d.commands) do
      add(out, {synopsis("kapi " .. name .. " " .. c.name:match("(%S+)$"), c), ""})
    end
  end
  section(out, "DESCRIPTION")
  if raw then
    add(out, prose(raw.text))
  else
    add(out, prose(command.summary .. "."))
    if d.description then add(out, prose(d.description)) end
    parser_sections(out, "kapi " .. name, d)
  end
  if raw and raw.recipes then
    section(out, "RECIPES")
    for _, r in ipairs(shipped_recipes()) do
      add(out, {"*" .. M.escape(r.name) .. "*", "\t" .. M.escape(r.recipe.summary), ""})
    end
  end
  section(out, "EXIT STATUS")
  add(out, prose("0 done; 1 done, but something was found or failed; 2 a usage or input error; 130 interrupted "
                 .. "(the contract every command keeps: see kapi(1))."))
  local refs = {{"kapi", 1}}
  if raw and raw.recipes then refs[#refs + 1] = {"kapi-recipes", 7} end
  if name == "recipes" then refs[#refs + 1] = {"kapi-recipes", 7} end
  if name == "test" then refs[#refs + 1] = {"busted", 1} end
  see_also(out, refs)
  return table.concat(out, "\n") .. "\n"
end

local DESCRIPTION = [[
kapi is a command-line tool for people who work with the Kroger APIs and
with 1WorldSync item certification: a C program that embeds Lua 5.4, so
that Kroger and 1WorldSync work is automated in short Lua scripts, explored
in a REPL, and run as packaged workflow recipes. Scripts read top to bottom
while their requests and tasks run concurrently on one event loop.

With no credentials configured, kapi works against its built-in sandbox, an
offline Kroger and 1WorldSync service started inside the command (see
kapi-sandbox(1)); nothing leaves the machine.

kapi COMMAND runs one of the commands below (each has its own page, and
takes --help); kapi SCRIPT runs a Lua script, as the lua interpreter does,
with kapi's modules built in; kapi alone on a terminal opens the REPL.]]

local CONTRACT = {
  {"0", "done, and nothing found wrong (a search that finds nothing; a dry run)."},
  {"1", "done, but something was found or failed: a rule error, a request that failed after its retries, "
        .. "a refused change."},
  {"2", "a usage or input error: an unknown option or a bad value, a file that is missing or malformed, an id "
        .. "that names nothing, no credentials configured. When some input is bad and the rest is good, the good "
        .. "part is still done."},
  {"130", "interrupted (Ctrl-C)."},
}

local FILES = {
  {"$XDG_CONFIG_HOME/kapi/config.lua", "The config file (or $KAPI_CONFIG): credentials, env, store."},
  {"$XDG_CONFIG_HOME/kapi/settings.json", "The settings kapi config keeps (mode 0600)."},
  {"$XDG_CONFIG_HOME/kapi/recipes/", "Your recipes, found by name by kapi run."},
  {"$XDG_STATE_HOME/kapi/tokens/", "Stored logins and tokens (files 0600, written atomically)."},
  {"$XDG_STATE_HOME/kapi/history", "The REPL's history."},
  {"$XDG_STATE_HOME/kapi/tracker.sqlite3", "republish-check's history of publications."},
  {"$XDG_STATE_HOME/kapi/limits/", "The calls counted against the public API's daily budgets."},
  {"/usr/share/kapi/", "kapi's own Lua tree and the recipes it ships (share/kapi beside bin/kapi)."},
  {"/usr/share/doc/kapi/", "The documentation, and examples/."},
}

--- kapi(1).
function M.main_page()
  local out = {preamble("KAPI", 1), "", "# NAME", "",
               "kapi - automate the Kroger and 1WorldSync APIs from Lua scripts, recipes and a REPL", ""}
  section(out, "SYNOPSIS")
  add(out, {"*kapi* _COMMAND_ [_ARGS_...]", "", "*kapi* [_OPTIONS_] [_SCRIPT_ [_ARGS_...]]", "", "*kapi*", ""})
  section(out, "DESCRIPTION")
  add(out, prose(DESCRIPTION))
  section(out, "COMMANDS")
  for _, name in ipairs(cli.commands) do
    add(out, {"*" .. M.escape(name) .. "*", "\t" .. safe_start(M.escape(cli.command(name).summary))
              .. ". See *kapi-" .. M.escape(name) .. "*(1).", ""})
  end
  section(out, "OPTIONS")
  add(out, prose("The options of kapi as a Lua interpreter; --verbose also goes anywhere on a command's line."))
  for _, o in ipairs(require("kapi.commands.help").INTERPRETER_OPTIONS) do
    add(out, option_entry({names = o.names, takes_value = o.argname ~= nil, argname = o.argname,
                           help = o.help:gsub("^%l", string.upper) .. "."}))
  end
  section(out, "EXIT STATUS")
  add(out, prose("Every command and every recipe keeps one contract: standard output is data and standard error "
                 .. "talk; one line per error, naming what was wrong; changes are dry runs without --apply. "
                 .. "The same condition gives the same status everywhere:"))
  for _, row in ipairs(CONTRACT) do
    add(out, {"*" .. row[1] .. "*", "\t" .. M.escape(row[2]), ""})
  end
  section(out, "ENVIRONMENT")
  for _, v in ipairs(require("kapi.environment").VARIABLES) do
    if v.group then
      add(out, {"## " .. M.escape(v.group:upper()), ""})
    else
      local names = {}
      for name in v.name:gmatch("[%w_]+") do names[#names + 1] = "*" .. M.escape(name) .. "*" end
      out[#out + 1] = table.concat(names, ", ")
      for _, part in ipairs(wrap(v.help .. " Default: " .. v.default .. ".", WIDTH - 8)) do
        out[#out + 1] = "\t" .. safe_start(M.escape(part))
      end
      out[#out + 1] = ""
    end
  end
  section(out, "FILES")
  for _, f in ipairs(FILES) do add(out, {"_" .. M.escape(f[1]) .. "_", "\t" .. M.escape(f[2]), ""}) end
  add(out, prose("XDG_CONFIG_HOME defaults to ~/.config and XDG_STATE_HOME to ~/.local/state."))
  section(out, "EXAMPLES")
  add(out, prose([[
Coupons at the three stores nearest a ZIP code, on the built-in sandbox:

  kapi run coupons --zip 45202 --stores 3

Check an item hierarchy against Kroger's rules before publishing it:

  kapi run preflight case.json

Where each publication stands with Kroger, and the safe part of the plan done:

  kapi run republish-check --all --apply

A Lua one-liner with the API built in:

  kapi -e 'for p in kapi.kroger.client{}:products{term = "milk", max_items = 3} do print(p.description) end']]))
  local refs = {}
  for _, name in ipairs(cli.commands) do refs[#refs + 1] = {"kapi-" .. name, 1} end
  refs[#refs + 1] = {"kapi-lua", 3}
  refs[#refs + 1] = {"kapi-recipes", 7}
  see_also(out, refs)
  return table.concat(out, "\n") .. "\n"
end

--- kapi-recipes(7): every recipe kapi ships, with its options.
function M.recipes_page()
  local run = require "kapi.commands.run"
  local out = {preamble("KAPI-RECIPES", 7), "", "# NAME", "", "kapi-recipes - the workflow recipes kapi ships", ""}
  section(out, "SYNOPSIS")
  add(out, {"*kapi run* _RECIPE_ [_OPTIONS_] [_ARGS_...]", ""})
  section(out, "DESCRIPTION")
  add(out, prose([[
A recipe is a workflow in a Lua file, run by name with kapi run. Each one
prints a table, or JSON with --json or CSV with --csv (where it prints
rows); takes --env sandbox|ce|prod; changes nothing without --apply; and
keeps the exit status of kapi(1). Your own recipes go in
$XDG_CONFIG_HOME/kapi/recipes/ or a KAPI_PATH directory's recipes/, and are
found before these; kapi recipes lists them all.]]))
  add(out, prose("These are the recipes kapi ships:"))
  local recipes = shipped_recipes()
  for _, r in ipairs(recipes) do
    add(out, {"- *" .. M.escape(r.name) .. "*: " .. M.escape(r.recipe.summary)})
  end
  out[#out + 1] = ""
  for _, r in ipairs(recipes) do
    local d = parsing.describe(run.parser(r.recipe, r.name))
    section(out, M.escape(r.name:upper()))
    add(out, {synopsis("kapi run " .. r.name, d), ""})
    add(out, prose(r.recipe.summary .. "."))
    if r.recipe.description then add(out, prose(r.recipe.description)) end
    if #d.arguments > 0 then
      add(out, {"## ARGUMENTS", ""})
      arguments_of(out, d)
    end
    add(out, {"## OPTIONS", ""})
    options_of(out, d)
  end
  see_also(out, {{"kapi", 1}, {"kapi-run", 1}, {"kapi-lua", 3}})
  return table.concat(out, "\n") .. "\n"
end

--- kapi-lua(3): the Lua API, from the documentation help() shows.
function M.lua_page()
  require "kapi"
  require "kapi.repl"
  local doc = require "kapi.doc"
  local out = {preamble("KAPI-LUA", 3), "", "# NAME", "", "kapi-lua - the Lua API of kapi", ""}
  section(out, "SYNOPSIS")
  add(out, {"\tlocal kapi = require \"kapi\"", ""})
  section(out, "DESCRIPTION")
  add(out, prose([[
kapi runs Lua 5.4 scripts with kapi's modules built in: tasks on one event
loop, HTTP, the Kroger and 1WorldSync clients, item rules and recipes. The
global kapi is there without a require, in scripts and in the REPL. This
page holds the same text as help() in the REPL; help(kapi.map) shows one
entry there.]]))
  local module
  for _, entry in ipairs(doc.list()) do
    local this = entry.name:match("^(.*)[.:][^.:]+$") or entry.name
    if this ~= module then
      module = this
      section(out, M.escape(module:upper()))
    end
    local signature, rest = entry.text:match("^([^\n]*)\n?(.*)$")
    local text, example = rest:match("^(.-)\n?Example:\n(.*)$")
    add(out, {"## " .. M.escape(signature), ""})
    add(out, prose(text or rest))
    if example then
      out[#out + 1] = "```"
      for line in (example .. "\n"):gmatch("([^\n]*)\n") do
        out[#out + 1] = (line:gsub("^  ", ""):gsub("\\", "\\\\"))
      end
      while out[#out] == "" do out[#out] = nil end
      add(out, {"```", ""})
    end
  end
  see_also(out, {{"kapi", 1}, {"kapi-recipes", 7}, {"lua", 1}})
  return table.concat(out, "\n") .. "\n"
end

--- Every page: {{name = "kapi", section = 1, source = scdoc text}, ...}.
function M.pages()
  local pages = {{name = "kapi", section = 1, source = M.main_page()}}
  for _, name in ipairs(cli.commands) do
    pages[#pages + 1] = {name = "kapi-" .. name, section = 1, source = M.command_page(name)}
  end
  pages[#pages + 1] = {name = "kapi-lua", section = 3, source = M.lua_page()}
  pages[#pages + 1] = {name = "kapi-recipes", section = 7, source = M.recipes_page()}
  return pages
end

return M
