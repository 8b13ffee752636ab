-- kapi recipes: what `kapi run` can run, one line each.
local recipes = require "kapi.recipes"

local M = {summary = "List the recipes, with a one-line description each"}

function M.arguments(parser)
  parser:flag("--json", "Print a JSON array of {name, summary, path}")
  parser:flag("--paths", "Show where each recipe was found")
end

function M.run(args)
  local list = recipes.list()
  if args.json then
    local json = require "kapi.json"
    print(json.encode(json.array(list), {sorted = true}))
    return 0
  end
  if #list == 0 then
    io.stderr:write("no recipes found; searched: ",
                    table.concat(require("kapi.paths").recipe_dirs(), ", "), "\n")
    return 0
  end
  local width = 0
  for _, r in ipairs(list) do width = math.max(width, #r.name) end
  for _, r in ipairs(list) do
    local line = ("%-" .. width .. "s  %s"):format(r.name, r.summary)
    if args.paths then line = line .. "  (" .. r.path .. ")" end
    print(line)
  end
  return 0
end

return M
