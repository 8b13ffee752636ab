-- Renders Lua values for people: what the REPL prints. Tables show sorted
-- keys, nest to a depth limit, mark cycles, show cjson.null as null and
-- elide long arrays with a count.
local null = require("cjson").null

local M = {max_depth = 4, max_items = 40, width = 78}

local keywords = {}
for word in ([[and break do else elseif end false for function goto if in
  local nil not or repeat return then true until while]]):gmatch("%a+") do
  keywords[word] = true
end

local function is_identifier(key)
  return type(key) == "string" and key:match("^[%a_][%w_]*$") ~= nil
         and not keywords[key]
end

local function quote(s)
  return (("%q"):format(s):gsub("\\\n", "\\n"):gsub("\\9", "\\t"))
end

local type_order = {number = 1, string = 2, boolean = 3}

local function key_before(a, b)
  local ta, tb = type(a), type(b)
  if ta ~= tb then return (type_order[ta] or 9) < (type_order[tb] or 9) end
  if ta == "number" or ta == "string" then return a < b end
  return tostring(a) < tostring(b)
end

local function array_length(t)
  local n = 0
  while rawget(t, n + 1) ~= nil do n = n + 1 end
  return n
end

local render

local function render_key(key, seen, depth, indent)
  if is_identifier(key) then return key end
  return "[" .. render(key, seen, depth, indent) .. "]"
end

local function layout(items, indent, open, close)
  local flat = open .. table.concat(items, ", ") .. close
  if #flat + #indent <= M.width and not flat:find("\n", 1, true) then
    return flat
  end
  local inner = indent .. "  "
  return open .. "\n" .. inner .. table.concat(items, ",\n" .. inner) .. "\n"
         .. indent .. close
end

local function render_table(t, seen, depth, indent)
  if seen[t] then return "<cycle: " .. tostring(t) .. ">" end
  if depth >= M.max_depth then return next(t) == nil and "{}" or "{...}" end
  seen[t] = true
  local inner, items = indent .. "  ", {}
  local n = array_length(t)
  for i = 1, math.min(n, M.max_items) do
    items[#items + 1] = render(t[i], seen, depth + 1, inner)
  end
  if n > M.max_items then
    items[#items + 1] = ("... (%d more)"):format(n - M.max_items)
  end
  local keys = {}
  for k in next, t do
    if not (math.type(k) == "integer" and k >= 1 and k <= n) then
      keys[#keys + 1] = k
    end
  end
  table.sort(keys, key_before)
  for i = 1, math.min(#keys, M.max_items) do
    local k = keys[i]
    items[#items + 1] = render_key(k, seen, depth + 1, inner) .. " = "
                        .. render(rawget(t, k), seen, depth + 1, inner)
  end
  if #keys > M.max_items then
    items[#items + 1] = ("... (%d more keys)"):format(#keys - M.max_items)
  end
  seen[t] = nil -- a table reached twice without a cycle prints twice
  return layout(items, indent, "{", "}")
end

function render(value, seen, depth, indent)
  local kind = type(value)
  if kind == "string" then return quote(value) end
  if value == null then return "null" end
  if kind ~= "table" then return tostring(value) end
  local mt = getmetatable(value)
  if mt and mt.__tostring then return tostring(value) end
  return render_table(value, seen, depth, indent)
end

--- The value as text; strings are quoted, as inside a table.
function M.format(value)
  return render(value, {}, 0, "")
end

--- What the REPL prints for one result: like format, but a string prints
--- as itself.
function M.show(value)
  if type(value) == "string" then return value end
  return M.format(value)
end

return M
