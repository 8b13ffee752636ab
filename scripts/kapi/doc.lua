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

local function find(thing)
  if type(thing) == "string" then return by_name[thing] end
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
  for _, entry in ipairs(entries) do
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
    for _, entry in ipairs(entries) do
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
  for _, entry in ipairs(entries) do
    local module = entry.name:match("^(.*)[.:][^.:]+$") or entry.name
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
