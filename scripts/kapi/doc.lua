-- Short documentation that modules declare next to what they define. The
-- REPL's help() reads it and docs/api.md is generated from it, so the two
-- never disagree.
local M = {}

local entries = {}                               -- in declaration order
local by_name = {}
local by_value = setmetatable({}, {__mode = "k"})

--- Declares the documentation of `name` (e.g. "kapi.spawn"). The first line
--- of text is the signature; the rest explains and shows an example.
function M.declare(name, value, text)
  local entry = {name = name, text = text}
  if not by_name[name] then entries[#entries + 1] = entry end
  by_name[name] = entry
  if value ~= nil and (type(value) == "function" or type(value) == "table") then
    by_value[value] = entry
  end
  return value
end

local function summary(entry)
  local signature, rest = entry.text:match("^([^\n]*)\n?(.*)$")
  local first = rest:match("^%s*([^\n]*)") or ""
  return signature, first
end

-- Modules load on first use, and declare their entries as they load; the
-- whole documentation needs them all.
local function load_everything()
  local ok, kapi = pcall(require, "kapi")
  if ok and kapi.load_all then kapi.load_all() end
end

-- Entries grouped by module, modules in name order, entries within one in
-- the order the module declares them: the same whatever loaded first.
local function module_of(entry)
  return entry.name:match("^(.*)[.:][^.:]+$") or entry.name
end

local function ordered()
  load_everything()
  local out = {}
  for i, entry in ipairs(entries) do
    local module = module_of(entry)
    -- kapi first; a client's methods ("content1:fetch") next to its module
    out[i] = {entry = entry, module = module == "kapi" and "" or module:gsub("^kapi%.", ""), index = i}
  end
  table.sort(out, function(a, b)
    if a.module ~= b.module then return a.module < b.module end
    return a.index < b.index
  end)
  for i, item in ipairs(out) do out[i] = item.entry end
  return out
end

local function find(thing)
  if type(thing) == "string" then
    if not by_name[thing] then load_everything() end
    return by_name[thing]
  end
  return by_value[thing]
end

--- The help text for thing (a value or a name), or nil.
function M.text(thing)
  local entry = find(thing)
  return entry and entry.name .. "\n  " .. entry.text:gsub("\n", "\n  ")
end

--- Every entry whose name starts with prefix (all when nil).
function M.list(prefix)
  local out = {}
  for _, entry in ipairs(ordered()) do
    if not prefix or entry.name:sub(1, #prefix) == prefix then
      out[#out + 1] = entry
    end
  end
  return out
end

--- What help() prints.
function M.help(thing)
  if thing == nil then
    local lines = {"kapi: automate the Kroger and 1WorldSync APIs from Lua.",
                   "help(kapi.spawn) or help(\"kapi.spawn\") shows one entry.", ""}
    for _, entry in ipairs(ordered()) do
      local signature, first = summary(entry)
      lines[#lines + 1] = ("  %-40s %s"):format(signature, first)
    end
    return table.concat(lines, "\n")
  end
  local text = M.text(thing)
  if text then return text end
  if type(thing) == "string" then
    local matches = M.list(thing)
    if #matches > 0 then
      local lines = {}
      for _, entry in ipairs(matches) do lines[#lines + 1] = "  " .. (summary(entry)) end
      return table.concat(lines, "\n")
    end
  end
  return "no help for " .. tostring(thing) .. "; help() lists what there is"
end

--- docs/api.md: every entry, grouped by module.
function M.markdown()
  local out = {"# kapi Lua API", "",
               "Generated from the documentation the modules declare (`help()` in the",
               "REPL shows the same text). Regenerate with `make docs`.", ""}
  local section
  for _, entry in ipairs(ordered()) do
    local module = module_of(entry)
    if module ~= section then
      section = module
      out[#out + 1] = "## " .. module
      out[#out + 1] = ""
    end
    local signature, rest = entry.text:match("^([^\n]*)\n?(.*)$")
    local prose, example = rest:match("^(.-)\n?Example:\n(.*)$")
    out[#out + 1] = "### `" .. signature .. "`"
    out[#out + 1] = ""
    out[#out + 1] = prose or rest
    if example then
      out[#out + 1] = "```lua\n" .. example:gsub("^  ", ""):gsub("\n  ", "\n") .. "\n```"
    end
    out[#out + 1] = ""
  end
  return table.concat(out, "\n")
end

return M
