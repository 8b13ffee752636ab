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
  _G.arg = table.move(args, 1, #args, 1, {[0] = "kapi test"})
  -- busted exits the process itself with the number of failures.
  require("busted.runner")({standalone = false})
  return 0
end

return M
