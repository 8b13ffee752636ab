-- `make demo` and the example recipe of docs/writing-recipes.md, run as a
-- user runs them: the showcase must keep working as the recipes change.
local process = require "helpers.process"

describe("the demo", function()
  it("shows coupons, preflight, every verdict, --apply and the new state", function()
    -- stdout and stderr in one, as on the terminal the demo is made for
    local r = process.sh(process.quote(process.kapi) .. " " .. process.quote(process.source_dir .. "/examples/demo.lua")
                         .. " 2>&1", {env = process.sandbox_env()})
    assert.equal(0, r.status, r.stdout)
    local out = r.stdout
    assert.matches("%$ kapi run coupons %-%-zip 45202", out)
    assert.matches("\n01400376%s+C%d+", out)                         -- a coupon at the nearest store
    assert.matches("KR%-ACTIVITY%-CODE.*KR%-IMG%-FACING%-DUP", out)
    for _, verdict in ipairs {"DONE", "WAITING", "OVERDUE", "FIX_THEN_REPUBLISH", "READY_TO_REPUBLISH",
                              "RESEND", "FAILED_TO_SEND", "WRONG_RECIPIENT", "BLOCKED"} do
      assert.matches("%d%d%d%d%d%d%d%d%d%d%d%d%d%d%s+[%a ]+%s+" .. verdict:gsub("_", "%%_"), out)
    end
    assert.matches("done: republish as New 10845678000023 to 0838016000123", out)
    assert.matches("done: resend 10860001000020 to 0838016000123", out)
    local final = out:match("The new state.*$")
    assert.matches("4 publications: 4 DONE%.", final)
  end)
end)

describe("the example recipe of docs/writing-recipes.md", function()
  it("finds the cheapest of the stores near a ZIP, in a table or JSON", function()
    local recipe = process.source_dir .. "/examples/recipes/cheapest-store.lua"
    local r = process.kapi_run({"run", recipe, "--zip", "45202", "--term", "peanut butter", "--stores", "3", "--json"},
                               {env = process.sandbox_env()})
    assert.equal(0, r.status, r.stderr)
    local rows = require("kapi.json").decode(r.stdout)
    assert.equal(3, #rows)
    assert.is_true(tonumber(rows[1].price) <= tonumber(rows[2].price))
    assert.matches("[Pp]eanut [Bb]utter", rows[1].product)
    local bad = process.kapi_run({"run", recipe, "--zip", "45202"}, {env = process.sandbox_env()})
    assert.equal(2, bad.status)
    assert.equal("kapi: give --zip and --term\n", bad.stderr)
  end)
end)
