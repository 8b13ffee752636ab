-- kapi test [busted args]: busted, running inside kapi so that specs can
-- use the bindings (which exist only here).
local M = {
  summary = "Run busted specs inside kapi (arguments go to busted)",
  raw = true,
}

function M.run(args)
  if args[1] == "-h" or args[1] == "--help" then
    print("Usage: kapi test [busted options] [spec files or directories]")
    print()
    print("Runs busted inside kapi; every busted option works (busted --help).")
    print("With no files, busted reads ./.busted or runs ./spec.")
    return 0
  end
  -- busted would print its own usage error and exit 1; a usage error of
  -- kapi's commands says it in one line and exits 2.
  local options = require("pl.tablex").update(require "busted.options", {standalone = false})
  local busted_cli = require("busted.modules.cli")(options)
  busted_cli:set_name("kapi test")
  local parsed, err = busted_cli:parse(args)
  if not parsed then
    -- Trimmed in linear time: the message quotes the argument, and "%s+$"
    -- backtracks over every run of spaces in it (20,000 took 3 s).
    local message = require("kapi.text").trim_end((tostring(err):gsub("^kapi test: error: ", "")))
    return require("kapi.cli").usage_error(message,
                                           "Usage: kapi test [busted options] [spec files or directories]")
  end
  -- A spec file or directory that is not there: named as kapi names every
  -- missing input (busted would say it on stdout and exit 1).
  local explicit = {}
  for _, a in ipairs(args) do explicit[a] = true end
  for _, path in ipairs(parsed.ROOT or {}) do
    local fs = require "kapi.core.fs"
    if explicit[path] and not fs.mode(path) then
      require("kapi.errors").input(("%s: no such spec file or directory"):format(require("kapi.errors").excerpt(path)), 0)
    end
    if not explicit[path] and not fs.mode(path) and not fs.mode(".busted") then
      require("kapi.errors").input(("no ./%s directory or .busted file here: name the spec files (kapi test FILE ...)")
                                   :format(path), 0)
    end
  end
  _G.arg = table.move(args, 1, #args, 1, {[0] = "kapi test"})
  -- busted exits the process itself with the number of failures.
  require("busted.runner")({standalone = false})
  return 0
end

return M
