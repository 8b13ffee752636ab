-- The REPL in a real pseudo-terminal, typed at as a person would.
local process = require "helpers.process"
local terminal = require "helpers.tmux"
local kapi = require "kapi"

local function prompt_count(screen)
  local n = 0
  for _ in screen:gmatch("\n> ") do n = n + 1 end
  return n
end

describe("the REPL", function()
  local dir, term

  local function start(args, opts)
    term = terminal.start(process.quote(process.kapi) .. " " .. (args or ""),
                          {XDG_STATE_HOME = dir .. "/state", HOME = dir}, opts)
    term:wait_for("Ctrl%-D to exit\n> ")
  end

  before_each(function() dir = process.tempdir() end)
  after_each(function()
    if term then term:stop() end
    process.cleanup(dir)
  end)

  it("opens when kapi runs on a terminal with no arguments", function()
    start()
    term:line("1 + 1")
    term:wait_for("> 1 %+ 1\n2\n> ")
  end)

  it("prints bare expressions, =expr and tables", function()
    start("repl")
    term:line("=  'a', 2")
    term:wait_for("\na%s+2\n")
    term:line("{b = 2, a = {1, 2}, require('cjson').null}")
    term:wait_for("\n{null, a = {1, 2}, b = 2}\n")
  end)

  it("continues an incomplete chunk on a >> prompt", function()
    start()
    term:line("for i = 1, 3 do")
    term:wait_for("\n>> ")
    term:line("io.write(i, ' ')")
    term:line("end")
    term:wait_for("\n>> end\n1 2 3 > ")
  end)

  it("completes globals, fields and methods with Tab", function()
    start()
    term:type("kapi.sp")
    term:key("Tab")
    term:wait_for("> kapi%.spawn")
    term:key("C-u")
    term:line("t = kapi.spawn(function() end)")
    term:type("t:wa")
    term:key("Tab")
    term:wait_for("> t:wait")
  end)

  it("interrupts the running line with Ctrl-C and returns to the prompt", function()
    start()
    term:line("kapi.sleep(30)")
    kapi.sleep(0.2)
    local before = kapi.now()
    term:key("C-c")
    term:wait_for("kapi%.sleep%(30%)\n.*interrupted\n> ")
    assert.is_true(kapi.now() - before < 2)
    term:line("while true do end")
    kapi.sleep(0.2)
    term:key("C-c")
    term:wait_for("while true do end\n.*interrupted\n> ")
    term:line("srv = kapi.server.listen{handler = function() kapi.sleep(30) end}")
    term:line("kapi.http.get(srv.url)")
    kapi.sleep(0.3)
    term:key("C-c")
    term:wait_for("kapi%.http%.get%(srv%.url%)\n.*interrupted\n> ")
    term:line("'still alive'")
    term:wait_for("\nstill alive\n> ")
  end)

  it("drops the typed line on Ctrl-C at the prompt", function()
    start()
    term:type("half typed")
    term:key("C-c")
    kapi.sleep(0.2)
    term:line("'fresh'")
    term:wait_for("\nfresh\n> ")
  end)

  it("keeps background tasks running while waiting for input", function()
    start()
    local marker = dir .. "/ticked"
    term:line(("kapi.spawn(function() kapi.sleep(0.2); io.open(%q, 'w'):close() end)"):format(marker))
    term:wait_for("\n> %s*$")
    kapi.sleep(0.6)
    assert.truthy(io.open(marker), "the background task did not run while the REPL waited")
  end)

  it("prints an error on one line and shows the traceback with .trace", function()
    start()
    term:line("local function f() error('oops') end f()")
    term:wait_for("\nstdin:1: oops\n> ")
    term:line(".trace")
    term:wait_for("stack traceback:.*in local 'f'")
  end)

  it("shows help() from the modules' declarations", function()
    start()
    term:line("help(kapi.spawn)")
    term:wait_for("kapi%.spawn%(fn, %.%.%.%) %-> task")
  end)

  it("fits its banner and help() to a 60-column terminal", function()
    start(nil, {width = 60})
    term:line("help(kapi.map)")
    local screen = term:wait_for("errors = nil\n> ")
    for line in screen:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 60, line) end
    assert.matches("^kapi %S+ %(Lua [%d.]+%)\nhelp%(%) for help", screen)
    assert.matches("\n  Calls fn%(item, index%) for every item, at most\n  `concurrency` calls at a time", screen)
    term:line("help()")
    screen = term:wait_for("task:error%(%) %-> err, traceback\n")
    for line in screen:gmatch("[^\n]+") do assert.is_true(utf8.len(line) <= 60, line) end
  end)

  it("says at once when a background task fails, above what is being typed", function()
    start()
    term:line("t = kapi.spawn(function() kapi.sleep(0.3) error('lost in the background') end)")
    term:wait_for("\n> %s*$")
    term:type("x = 41 +")
    term:wait_for("\nkapi: a background task failed: stdin:1: lost in the background %(%.trace shows where%)\n> x = 41 %+")
    term:line(" 1")
    term:line("x")
    term:wait_for("\n42\n> ")
    term:line("t:wait()")
    term:wait_for("\nstdin:1: lost in the background\n> ")
    term:line(".trace")
    term:wait_for("stack traceback:")
  end)

  it("keeps history across sessions in ~/.local/state/kapi/history, mode 0600", function()
    start()
    term:line("history_marker = 42")
    term:wait_for("\n> %s*$")
    term:key("C-d")
    term:wait_for("%[exit 0%]")
    term:stop()
    local path = dir .. "/state/kapi/history"
    local f = assert(io.open(path))
    assert.matches("history_marker", f:read("a"))
    f:close()
    local p = io.popen("stat -c %a " .. process.quote(path))
    assert.equal("600", p:read("l"))
    p:close()
    start()
    term:key("Up")
    term:wait_for("> history_marker = 42")
  end)

  it("exits with status 0 on Ctrl-D", function()
    start()
    term:key("C-d")
    local screen = term:wait_for("%[exit %d+%]")
    assert.matches("%[exit 0%]", screen)
    assert.equal(1, prompt_count("\n" .. screen))
  end)
end)
