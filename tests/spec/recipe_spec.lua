-- The recipe toolkit: tables fitted to a width, JSON with keys in order,
-- CSV quoting, --shard, GTIN lists with bad entries named.
local recipe = require "kapi.recipe"
local json = require "kapi.json"
local process = require "helpers.process"

describe("kapi.recipe output", function()
  local columns = {{key = "gtin", title = "GTIN"}, {key = "verdict", title = "VERDICT"},
                   {key = "why", title = "WHY", wrap = true}}
  local rows = {{gtin = "10614141000019", verdict = "DONE", why = "synchronised at the certified GLN"},
                {gtin = "10845678000023", verdict = "READY_TO_REPUBLISH",
                 why = "rejected for its model GTIN, changed since, passes every rule now"}}

  it("aligns columns and keeps rows on one line when there is no width limit", function()
    local text = recipe.render_table(rows, columns)
    assert.equal(table.concat({
      "GTIN            VERDICT             WHY",
      "10614141000019  DONE                synchronised at the certified GLN",
      "10845678000023  READY_TO_REPUBLISH  rejected for its model GTIN, changed since, passes every rule now",
    }, "\n") .. "\n", text)
  end)

  it("wraps the wrap column at word boundaries to fit the terminal's width", function()
    local text = recipe.render_table(rows, columns, {width = 60})
    for line in text:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 60, line) end
    assert.matches("10845678000023  READY_TO_REPUBLISH  rejected for its model\n" .. (" "):rep(36)
                   .. "GTIN, changed since,\n" .. (" "):rep(36) .. "passes every rule now\n", text)
  end)

  it("colours only when asked, and resets after each cell", function()
    local styled = {{key = "verdict", title = "VERDICT", style = function(v) return v == "DONE" and "green" end}}
    assert.matches("\27%[32mDONE\27%[0m", recipe.render_table(rows, styled, {color = true}))
    assert.is_nil(recipe.render_table(rows, styled):find("\27", 1, true))
  end)

  it("writes JSON objects with keys in the documented order, nil as null", function()
    local text = recipe.render_json({{b = 1, a = "x"}, {a = json.null}}, {"a", "b"})
    assert.equal('[\n  {"a":"x","b":1},\n  {"a":null,"b":null}\n]\n', text)
    assert.same({{a = "x", b = 1}, {a = json.null, b = json.null}}, json.decode(text))
    assert.equal("[]\n", recipe.render_json({}, {"a"}))
  end)

  it("quotes CSV fields that need it (RFC 4180)", function()
    local text = recipe.render_csv({{a = 'say "hi", then go', b = "line\nbreak"}, {a = "plain"}}, {"a", "b"})
    assert.equal('a,b\r\n"say ""hi"", then go","line\nbreak"\r\nplain,\r\n', text)
    local parsed = require("kapi.items").parse_csv(text)
    assert.equal('say "hi", then go', parsed[2][1])
  end)
end)

describe("kapi.recipe --shard", function()
  local list = {}
  for i = 1, 200 do list[i] = ("%014d"):format(i * 7919) end

  it("splits by key into disjoint shards that cover the input, whatever the order", function()
    local seen, reversed = {}, {}
    for i = #list, 1, -1 do reversed[#reversed + 1] = list[i] end
    for i = 1, 4 do
      local part = recipe.shard({shard = i .. "/4"}, list)
      local again = recipe.shard({shard = i .. "/4"}, reversed)
      assert.equal(#part, #again)
      assert.is_true(#part > 20, "a shard of " .. #part .. " is too uneven")
      for _, g in ipairs(part) do
        assert.is_nil(seen[g])
        seen[g] = i
      end
    end
    local count = 0
    for _ in pairs(seen) do count = count + 1 end
    assert.equal(#list, count)
    assert.equal(list, recipe.shard({}, list))
  end)

  it("rejects a malformed shard with a usage error", function()
    for _, bad in ipairs {"0/4", "5/4", "1/0", "a/b", "1-4"} do
      local ok, err = pcall(recipe.shard, {shard = bad}, list)
      assert.is_false(ok)
      assert.equal("usage", err.kind)
      assert.matches("expected I/N", err.message)
    end
  end)
end)

describe("kapi.recipe.gtins", function()
  it("normalises, drops duplicates, and names bad entries by argument or file line", function()
    local dir = process.tempdir()
    process.write(dir .. "/list.csv", "gtin,note\n614141000012,each\n# comment\n10614141000018,bad check digit\n")
    local problems = setmetatable({}, {__index = {add = function(self, where, what)
      self[#self + 1] = where .. ": " .. what
    end}})
    local got = recipe.gtins({"00614141000012", "12ab"}, {dir .. "/list.csv", dir .. "/missing"}, problems)
    process.cleanup(dir)
    assert.same({"00614141000012"}, got)
    assert.equal(3, #problems)
    assert.matches("^argument 2: .*non%-digit", problems[1])
    assert.matches("list%.csv:4: .*check digit 8; it should be 9", problems[2])
    assert.matches("missing: No such file", problems[3])
  end)
end)
