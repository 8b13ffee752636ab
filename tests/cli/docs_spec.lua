-- The examples of docs/recipes.md are what kapi prints: every fenced block
-- that starts with "$ kapi ..." is run, on the built-in sandbox, in a
-- pseudo-terminal 100 columns wide with NO_COLOR (as the page says), and
-- its output and exit status compared with the text. A "$ cat FILE" line
-- and the lines under it make the file the next commands read. A block
-- marked "…" is trimmed: its lines must appear in that order; any other
-- block must match line for line. Ports and dates, which change from run
-- to run, are compared as placeholders.
local process = require "helpers.process"

local PAGE = process.source_dir .. "/docs/recipes.md"
local ITEMS = process.source_dir .. "/examples/items"

local function read(path)
  local f = assert(io.open(path))
  local text = f:read("a")
  f:close()
  return text
end

-- The examples: {line = N, commands = {{text, output = {lines}, status} or {cat = file}}, files, trimmed};
-- a file shown with cat is there for the blocks after it too.
local function examples(text)
  local out, block, in_fence, n, shown, after = {}, nil, false, 0, {}, nil
  local function last_command() return block and block.commands[#block.commands] end
  for line in (text .. "\n"):gmatch("([^\n]*)\n") do
    n = n + 1
    if line:match("^```") then
      after = in_fence and block or nil
      if after then out[#out + 1] = block end
      in_fence, block = not in_fence, nil
    elseif in_fence then
      local command = line:match("^%$ (.*)$")
      if command and not block and not command:match("^kapi ") and not command:match("^cat ") then
        in_fence = "other"
      elseif in_fence ~= "other" and (command or block) then
        block = block or {line = n, commands = {}, files = shown}
        if command and command:match("^cat ") then
          local file = {name = command:match("^cat (%S+)$"), lines = {}}
          shown[#shown + 1] = file
          block.commands[#block.commands + 1] = {cat = file}
        elseif command then
          block.commands[#block.commands + 1] = {text = command, output = {}, status = 0}
        elseif last_command().cat then
          table.insert(last_command().cat.lines, line)
        elseif line:match("^%(exit status (%d+)") then
          last_command().status = tonumber(line:match("^%(exit status (%d+)"))
        else
          if line:match("^…") then block.trimmed = true end
          table.insert(last_command().output, line)
        end
      end
    elseif line:match("%S") then
      -- "(exit status N: ...)" as the first line after a block is its last command's
      if after and line:match("^%(exit status (%d+)") then
        after.commands[#after.commands].status = tonumber(line:match("^%(exit status (%d+)"))
      end
      after = nil
    end
  end
  return out
end

-- What changes from run to run, as placeholders; trailing spaces dropped.
local function normal(line)
  return (line:gsub("127%.0%.0%.1:%d+", "127.0.0.1:PORT"):gsub("%d%d%d%d%-%d%d%-%d%dT?[%d:]*Z?", "DATE")
              :gsub("%s+$", ""))
end

local function lines_of(text)
  local out = {}
  for line in (text:gsub("\r", "") .. "\n"):gmatch("([^\n]*)\n") do out[#out + 1] = normal(line) end
  while out[#out] == "" do out[#out] = nil end
  return out
end

local function run_in_terminal(dir, command)
  local env = process.sandbox_env()
  env.NO_COLOR, env.HOME, env.XDG_STATE_HOME, env.XDG_CONFIG_HOME = "1", dir, dir .. "/state", dir .. "/config"
  local line = command:gsub("^kapi ", process.quote(process.kapi) .. " ")
  -- script(1) gives the command a terminal; the exit status comes last.
  local r = process.sh(("script -qec %s /dev/null"):format(process.quote("stty cols 100 rows 50; " .. line)),
                       {env = env, cwd = dir})
  return r.status, lines_of(r.stdout)
end

local function check(block)
  local dir = process.tempdir()
  os.execute(("cp %s/*.json %s/"):format(process.quote(ITEMS), process.quote(dir)))
  for _, file in ipairs(block.files) do process.write(dir .. "/" .. file.name, table.concat(file.lines, "\n") .. "\n") end
  local ok, err = pcall(function()
    for _, command in ipairs(block.commands) do
      if command.text then
        local status, got = run_in_terminal(dir, command.text)
        local where = ("docs/recipes.md:%d: $ %s"):format(block.line, command.text)
        assert.equal(command.status, status, where .. "\n" .. table.concat(got, "\n"))
        local want = {}
        for _, line in ipairs(command.output) do
          if not line:match("^…") then want[#want + 1] = normal(line) end
        end
        while want[#want] == "" do want[#want] = nil end -- the blank line before the next command
        if block.trimmed then
          local at = 1
          for _, line in ipairs(want) do
            while at <= #got and got[at] ~= line do at = at + 1 end
            assert.is_true(at <= #got, where .. ": not printed (in this order):\n" .. line .. "\n--- printed:\n"
                                         .. table.concat(got, "\n"))
            at = at + 1
          end
        else
          assert.are.same(want, got, where)
        end
      end
    end
  end)
  process.cleanup(dir)
  assert(ok, err)
end

describe("docs/recipes.md", function()
  local blocks = examples(read(PAGE))
  it("has its examples", function() assert.is_true(#blocks >= 20, #blocks) end)
  for _, block in ipairs(blocks) do
    local first
    for _, command in ipairs(block.commands) do first = first or (command.text and command) end
    it(("shows what kapi prints for $ %s (line %d)"):format(first.text or "", block.line), function()
      check(block)
    end)
  end
end)
