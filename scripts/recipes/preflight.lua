-- preflight: check item hierarchies against Kroger's rules before they are
-- published, so a rejection costs seconds instead of a 24-hour review.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local rules = require "kapi.rules.kroger"
local errors = require "kapi.errors"
local input = require "kapi.input"

local SHORT_LEVEL = {BASE_UNIT_OR_EACH = "EACH", PACK_OR_INNER_PACK = "PACK", DISPLAY_SHIPPER = "DISPLAY"}

local COLUMNS = {
  {key = "severity", title = "SEV", style = function(v) return v == "error" and "red" or "yellow" end},
  {key = "rule", title = "RULE"},
  {key = "gtin", title = "GTIN"},
  {key = "short_level", title = "LEVEL"},
  {key = "explained", title = "PROBLEM AND FIX", wrap = true},
}
local KEYS = {"rule", "severity", "gtin", "level", "attribute", "message", "fix"}

local function top_gtin(h) return tostring(h.gtin) end

-- The hierarchies of item files ("-": standard input); a file that cannot
-- be read, or holds no hierarchy, is named and the others are checked.
local function read_files(paths, problems)
  local out = {}
  for _, path in ipairs(paths) do
    local ok, err = pcall(function()
      local good, bad = kapi.items.hierarchies(input.json(path), input.name(path))
      for _, h in ipairs(good) do out[#out + 1] = h end
      for _, why in ipairs(bad) do problems:error(errors.new("input", why)) end
    end)
    if not ok and not errors.is_input(err) then error(err, 0) end -- Ctrl-C, or a bug: not the file's fault
    if not ok then problems:error(err) end
  end
  return out
end

-- A GTIN the service does not know is an input that names nothing (exit
-- 2); any other failure is the work's (exit 1).
local function not_found(err)
  if errors.is(err, "http") and err.status == 404 then return errors.new("input", "not found") end
  return err
end

-- Hierarchies as 1WorldSync holds them: Content1 (what was published),
-- or Item Management (what is saved now), read concurrently. The shard is
-- taken before reading, so no machine reads what another checks.
local function read_published(args, problems, checker)
  local gtins = recipe.shard(args, recipe.gtins(args.gtin, nil, problems, "--gtin"))
  local read
  if args.from == "items" then
    local items = kapi.items.client {env = args.env}
    read = function(g) return (items:item(g)) end
  else
    local content1 = kapi.content1.client {env = args.env}
    read = function(g) return content1:hierarchy(g) or errors.input("not found in Content1", 0) end
  end
  local found, failures = kapi.map(gtins, read)
  local out = {}
  for i, g in ipairs(gtins) do
    if failures and failures[i] then problems:error(not_found(failures[i]), g) else out[#out + 1] = found[i] end
  end
  if args.gln then
    local content1 = kapi.content1.client {env = args.env}
    local bar = recipe.progress(args, {label = "reading " .. args.gln, unit = "items"})
    -- Each level is judged as its page comes, while the next is fetched
    -- (a hierarchy's levels may come on different pages: the rest waits
    -- for the whole run). Not when sharded: most levels are not ours.
    local look = not args.shard and function(item) checker:look(item) end or nil
    local all = content1:hierarchies({ipGln = args.gln}, {progress = function(n) bar:step(n) end, on_item = look})
    bar:finish()
    if #all == 0 then problems:add("--gln " .. args.gln, "no item hierarchy of this supplier in Content1") end
    for _, h in ipairs(recipe.shard(args, all, top_gtin)) do out[#out + 1] = h end
  end
  return out
end

local function explain(finding)
  finding.short_level = SHORT_LEVEL[finding.level] or finding.level
  local stop = finding.message:match("[.!?]$") and " " or ". "
  finding.explained = finding.message .. stop .. "Fix: " .. finding.fix .. "."
  return finding
end

return {
  summary = "Check item hierarchies against Kroger's rules before publishing",
  keys = KEYS,
  description = [[
Checks hierarchies in the item format (docs/recipes.md) from JSON files, or
read from Content1 by GTIN or by supplier GLN, against every Kroger rule
(KR-...) and prints each finding with the fix; a FILE of - is standard
input. Exit status (docs/usage.md): 0 when there is no error
(warnings allowed), 1 when there are errors, 2 for a usage error or an
input that could not be read or holds no item hierarchy (the others are
still checked).]],

  arguments = function(parser)
    parser:argument("file", "Item hierarchy JSON files (one hierarchy or an array; - reads stdin)"):args("*")
          :argname("FILE")
    parser:option("--gtin", "Check this GTIN's hierarchy as published (repeatable)"):count("*")
    parser:option("--gln", "Check every hierarchy of this supplier (information provider GLN)")
    parser:option("--from", "Where --gtin and --gln read from: content1 (published) or items (saved now) "
                            .. "(default: content1)")
          :choices {"content1", "items"}
    recipe.options(parser, {"output", "quiet", "env", "shard"})
  end,

  run = function(args)
    if #args.file == 0 and #args.gtin == 0 and not args.gln then
      recipe.usage("what to check? give FILEs, --gtin GTIN or --gln GLN")
    end
    if args.from and #args.gtin == 0 and not args.gln then
      recipe.usage("--from goes with --gtin or --gln: it says where their hierarchies are read from")
    end
    args.from = args.from or "content1"
    recipe.check_gln("--gln", args.gln)
    local problems = recipe.problems()
    local hierarchies = recipe.shard(args, read_files(recipe.distinct_files(args.file), problems), top_gtin)
    local checker = rules.checker()
    if #args.gtin > 0 or args.gln then
      for _, h in ipairs(read_published(args, problems, checker)) do hierarchies[#hierarchies + 1] = h end
    end

    if #hierarchies == 0 then return recipe.status(problems) end -- nothing usable: nothing to print
    local findings = checker:check(hierarchies)
    for _, f in ipairs(findings) do explain(f) end
    recipe.print(args, findings, COLUMNS, KEYS)

    local error_count, warnings = rules.count(findings)
    if #findings == 0 and #hierarchies > 0 then
      recipe.say(args, #hierarchies == 1 and "1 hierarchy passes every Kroger rule."
                       or ("%d hierarchies pass every Kroger rule."):format(#hierarchies))
    elseif #findings > 0 then
      recipe.say(args, ("\n%d %s checked: %d %s, %d %s."):format(#hierarchies, #hierarchies == 1 and "hierarchy" or "hierarchies",
          error_count, error_count == 1 and "error" or "errors", warnings, warnings == 1 and "warning" or "warnings"))
    end
    return recipe.status(problems, error_count > 0)
  end,
}
