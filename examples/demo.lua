-- `make demo`: kapi's main jobs on the built-in sandbox, in one process so
-- that the sandbox remembers what --apply changed. Each step prints the
-- command a user would type for it.
local kapi = require "kapi"
local recipe = require "kapi.recipe"
local run = require("kapi.commands.run").run

local here = arg[0]:match("^(.*)/") or "."

local function step(title, args)
  io.write("\n", recipe.paint("== " .. title, "bold", recipe.color(1)), "\n$ kapi run ",
           table.concat(args, " "), "\n")
  io.stdout:flush()
  local status = run(args)
  io.stdout:flush()
  return status
end

io.write([[
kapi demo: a shopper's coupon lookup, then a supplier's week of Kroger
item certification in a minute, all on kapi's built-in sandbox (no
credentials, no network).
]])

step("Coupons at the three stores nearest ZIP 45202, fetched concurrently",
     {"coupons", "--zip", "45202", "--stores", "3", "--limit", "4"})

step("Preflight: check an item before publishing it (two planted defects)",
     {"preflight", here .. "/items/duplicate-facing-and-made-in.json"})

step("Where each publication stands with Kroger, why, and what to do next",
     {"republish-check", "--all"})

step("Do the safe part of the plan: republish what is fixed, resend what is registered",
     {"republish-check", "--all", "--apply"})

io.write("\n(Kroger QA reviews a republished item within about 24 h; the sandbox takes 2 s.)\n")
kapi.sleep(2.5)

step("The new state of the two publications kapi acted on",
     {"republish-check", "10845678000023", "10860001000020"})
