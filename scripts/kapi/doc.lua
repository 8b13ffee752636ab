-- Short documentation that modules declare next to what they define. The
-- REPL's help() reads it and docs/api.md is generated from it, so the two
-- never disagree.
local errors = require "kapi.errors"

local M = {}

local entries = {}                               -- in declaration order
local by_name = {}
local by_value = setmetatable({}, {__mode = "k"})

--- Declares the documentation of `name` (e.g. "kapi.spawn"). The first line
--- of text is the signature; the rest explains and shows an example.
function M.declare(name, value, text)
  errors.check(name, "string", "doc.declare: name")
  errors.check(text, "string", "doc.declare: text")
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

-- text fitted to width: when a line is longer, the prose is reflowed
-- (lines of one indentation joined into paragraphs, then wrapped) and a
-- long line of an example is wrapped with its indentation kept.
local function fit(text, width)
  if not width then return text end
  local wrap = require("kapi.output").wrap
  local lines, too_long = {}, false
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    lines[#lines + 1] = line
    too_long = too_long or (utf8.len(line) or #line) > width
  end
  if not too_long then return text end
  local out, paragraph, indent, in_example = {}, {}, nil, false
  local function flush()
    if #paragraph == 0 then return end
    for _, part in ipairs(wrap(table.concat(paragraph, " "), math.max(20, width - #indent))) do
      out[#out + 1] = indent .. part
    end
    paragraph = {}
  end
  for _, line in ipairs(lines) do
    local lead, rest = line:match("^(%s*)(.-)%s*$")
    in_example = in_example or rest == "Example:"
    if in_example or rest == "" or lead ~= indent then flush() end
    if in_example or rest == "" then
      for _, part in ipairs(rest == "" and {""} or wrap(rest, math.max(20, width - #lead))) do
        out[#out + 1] = lead .. part
      end
    else
      indent = lead
      paragraph[#paragraph + 1] = rest
    end
  end
  flush()
  return table.concat(out, "\n")
end

local function overview(width)
  local lines = {"kapi: automate the Kroger and 1WorldSync APIs from Lua.",
                 "help(kapi.spawn) or help(\"kapi.spawn\") shows one entry.", ""}
  for _, entry in ipairs(ordered()) do
    local signature, first = summary(entry)
    local line = ("  %-40s %s"):format(signature, first)
    if width and (utf8.len(line) or #line) > width then
      lines[#lines + 1] = "  " .. signature
      line = "      " .. first
    end
    lines[#lines + 1] = line
  end
  return fit(table.concat(lines, "\n"), width)
end

--- What help() prints, fitted to width columns when width is given (the
--- terminal's, in the REPL).
function M.help(thing, width)
  if thing == nil then return overview(width) end
  local text = M.text(thing)
  if text then return fit(text, width) end
  if type(thing) == "string" then
    local matches = M.list(thing)
    if #matches > 0 then
      local lines = {}
      for _, entry in ipairs(matches) do lines[#lines + 1] = "  " .. (summary(entry)) end
      return fit(table.concat(lines, "\n"), width)
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
