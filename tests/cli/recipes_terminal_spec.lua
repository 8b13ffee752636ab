-- What recipes do on a terminal, in a real pseudo-terminal (tmux, 100
-- columns): tables fitted to the width, colour unless NO_COLOR, and a
-- progress bar for work over a second, which stays silent when piped.
local tmux = require "helpers.tmux"
local process = require "helpers.process"

local KAPI = process.quote(process.kapi)
local DEFECTIVE = process.quote(process.source_dir .. "/examples/items/duplicate-facing-and-made-in.json")

local function run_in_terminal(command, env, opts)
  local term = tmux.start(command, env, opts)
  local ok, screen = pcall(term.wait_for, term, "%[exit %d+%]", 20)
  local coloured = ok and term:screen(true)
  term:stop()
  assert(ok, screen)
  return screen, coloured
end

describe("recipes on a terminal", function()
  it("fit tables to the terminal's width and colour them", function()
    local screen, coloured = run_in_terminal(KAPI .. " run preflight " .. DEFECTIVE, {TERM = "xterm"})
    assert.matches("%[exit 1%]", screen)
    for line in screen:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 100, line) end
    assert.matches("\n%s+%S", screen)          -- the PROBLEM AND FIX column wrapped onto more lines
    assert.matches("\27%[31merror", coloured)  -- errors in red
  end)

  it("show one block per record where a table cannot fit, as on a 60-column terminal", function()
    local screen = run_in_terminal(KAPI .. " run republish-check 10845678000023 10860001000037 -q; " ..
                                   KAPI .. " run stores --zip 45202 --limit 2 -q",
                                   {TERM = "xterm", NO_COLOR = "1"}, {width = 60})
    screen = "\n" .. screen
    for line in screen:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 60, line) end
    -- Each record a block: the title, then its value wrapped beside it.
    assert.matches("\nGTIN                 10845678000023\nTO                   queue\n"
                   .. "VERDICT              READY_TO_REPUBLISH\nCAUSE AND NEXT STEP  Kroger QA rejected it", screen)
    assert.matches("\n                     [%w(]", screen)
    assert.matches("\nSTORE        01400376\nNAME         Kroger %- Cincinnati\n", screen)
    -- A store's departments: the first four and a count, not ten lines.
    assert.matches("\nDEPARTMENTS  [^\n]+\n[^\n]*%+%d more\n", screen)
  end)

  it("print no colour with NO_COLOR", function()
    local _, coloured = run_in_terminal(KAPI .. " run preflight " .. DEFECTIVE, {TERM = "xterm", NO_COLOR = "1"})
    assert.is_nil(coloured:find("\27[31m", 1, true))
  end)

  local slow_work = [[
    local kapi, recipe = require "kapi", require "kapi.recipe"
    local bar = recipe.progress({}, {label = "checking", total = 30})
    for _ = 1, 30 do kapi.sleep(0.05); bar:step() end
    bar:finish()
    print("finished")]]

  it("draw a progress bar with count, rate and ETA once work takes over a second", function()
    local term = tmux.start(KAPI .. " -e " .. process.quote(slow_work))
    local ok, screen = pcall(term.wait_for, term, "checking %[#+%.*%] %d+/30 items  %d+/s  ETA %d+s", 5)
    local after = ok and term:wait_for("%[exit 0%]", 5)
    term:stop()
    assert(ok, screen)
    assert.matches("finished", after)
    assert.is_nil(after:find("checking [", 1, true)) -- cleared when done
  end)

  it("say a problem met while the bar is drawn on a line of its own, then draw the bar again", function()
    local work = [[
      local kapi, recipe = require "kapi", require "kapi.recipe"
      local bar, problems = recipe.progress({}, {label = "checking", total = 40}), recipe.problems()
      for i = 1, 40 do
        kapi.sleep(0.05); bar:step()
        if i == 30 then problems:fail("00000000000017", "could not read the item") end
      end
      bar:finish()
      print("finished")]]
    local term = tmux.start(KAPI .. " -e " .. process.quote(work))
    local ok, screen = pcall(term.wait_for, term, "could not read the item\nchecking %[#+%.*%] %d+/40 items", 8)
    local after = ok and term:wait_for("%[exit 0%]", 5)
    term:stop()
    assert(ok, screen)
    assert.matches("\nkapi: 00000000000017: could not read the item\n", "\n" .. screen)
    assert.is_nil(screen:find("ETA %d+skapi", 1), screen) -- not glued to the bar's text
    assert.matches("finished", after)
  end)

  it("keep the bar off stderr when it is not a terminal, and with --quiet", function()
    local piped = process.kapi_run {"-e", slow_work}
    assert.equal("finished\n", piped.stdout)
    assert.equal("", piped.stderr)
    local quiet = tmux.start(KAPI .. " -e " .. process.quote(slow_work:gsub("progress%({}", "progress({quiet = true}")))
    local ok, screen = pcall(quiet.wait_for, quiet, "%[exit 0%]", 5)
    quiet:stop()
    assert(ok, screen)
    assert.is_nil(screen:find("checking", 1, true))
  end)
end)
