-- preflight: check item hierarchies against Kroger's rules before they are
-- published, so a rejection costs seconds instead of a 24-hour review.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local rules = require "kapi.rules.kroger"
local json = require "kapi.json"
local errors = require "kapi.errors"

local SHORT_LEVEL = {BASE_UNIT_OR_EACH = "EACH", PACK_OR_INNER_PACK = "PACK", DISPLAY_SHIPPER = "DISPLAY"}

local COLUMNS = {
  {key = "severity", title = "SEV", style = function(v) return v == "error" and "red" or "yellow" end},
  {key = "rule", title = "RULE"},
  {key = "gtin", title = "GTIN"},
  {key = "short_level", title = "LEVEL"},
  {key = "explained", title = "PROBLEM AND FIX", wrap = true},
}
local KEYS = {"rule", "severity", "gtin", "level", "attribute", "message", "fix"}

local function read_files(paths, problems)
  local out = {}
  for _, path in ipairs(paths) do
    local f, err = io.open(path, "r")
    if not f then
      problems:add(path, (err:gsub("^[^:]+: ", "")))
    else
      local ok, value = pcall(json.decode, f:read("a"))
      f:close()
      if not ok or type(value) ~= "table" then
        problems:add(path, "not an item hierarchy in JSON (" .. tostring(ok and type(value) or value) .. ")")
      elseif value.gtin or value.level then
        out[#out + 1] = value
      else
        for _, h in ipairs(value) do out[#out + 1] = h end
      end
    end
  end
  return out
end

-- Hierarchies as 1WorldSync holds them: Content1 (what was published),
-- or Item Management (what is saved now).
local function read_published(args, problems)
  local out = {}
  local gtins = recipe.gtins(args.gtin, nil, problems)
  if args.from == "items" then
    local items = kapi.items.client {env = args.env}
    for _, g in ipairs(gtins) do
      local ok, h = pcall(items.item, items, g)
      if ok then out[#out + 1] = h else problems:add(g, tostring(h)) end
    end
    return out
  end
  local content1 = kapi.content1.client {env = args.env}
  for _, g in ipairs(gtins) do
    local h = content1:hierarchy(g)
    if h then out[#out + 1] = h else problems:add(g, "not found in Content1") end
  end
  if args.gln then
    local bar = recipe.progress(args, {label = "reading " .. args.gln, unit = "items"})
    local found = content1:hierarchies({ipGln = args.gln}, {progress = function(n) bar:step(n) end})
    bar:finish()
    table.move(found, 1, #found, #out + 1, out)
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
  description = [[
Checks hierarchies in the item format (docs/recipes.md) from JSON files, or
read from Content1 by GTIN or by supplier GLN, against every Kroger rule
(KR-...) and prints each finding with the fix. Exit status: 0 when there is
no error (warnings allowed), 1 when there are errors or an input could not
be read, 2 on a usage error.]],

  arguments = function(parser)
    parser:argument("file", "Item hierarchy JSON files (one hierarchy or an array)"):args("*")
    parser:option("--gtin", "Check this GTIN's hierarchy as published (repeatable)"):count("*")
    parser:option("--gln", "Check every hierarchy of this supplier (information provider GLN)")
    parser:option("--from", "Where --gtin reads from: content1 (published) or items (saved now)")
          :choices {"content1", "items"}:default("content1")
    recipe.options(parser, {"output", "quiet", "env", "shard"})
  end,

  run = function(args)
    if #args.file == 0 and #args.gtin == 0 and not args.gln then
      errors.usage("what to check? give FILEs, --gtin GTIN or --gln GLN", 0)
    end
    local problems = recipe.problems()
    local hierarchies = read_files(args.file, problems)
    if #args.gtin > 0 or args.gln then
      for _, h in ipairs(read_published(args, problems)) do hierarchies[#hierarchies + 1] = h end
    end
    hierarchies = recipe.shard(args, hierarchies, function(h) return tostring(h.gtin) end)

    local findings = rules.check(hierarchies)
    for _, f in ipairs(findings) do explain(f) end
    recipe.print(args, findings, COLUMNS, KEYS)

    local error_count, warnings = rules.count(findings)
    local say = recipe.format(args) == "table" and print or function(text) recipe.note(args, "%s", text) end
    if #findings == 0 and #hierarchies > 0 then
      say(("%d %s pass every Kroger rule."):format(#hierarchies, #hierarchies == 1 and "hierarchy" or "hierarchies"))
    elseif #findings > 0 then
      say(("\n%d %s checked: %d %s, %d %s."):format(#hierarchies, #hierarchies == 1 and "hierarchy" or "hierarchies",
          error_count, error_count == 1 and "error" or "errors", warnings, warnings == 1 and "warning" or "warnings"))
    end
    return recipe.status(problems, error_count > 0)
  end,
}
