-- kapi completion bash|zsh|fish, run in each shell for real: bash's
-- function driven through COMP_WORDS and COMP_CWORD as bash's completion
-- drives it, fish's through `complete -C`, zsh's in an interactive zsh in
-- a pseudo-terminal (tests/helpers/zsh_complete.zsh) after a Tab. The same
-- cases in every shell, with recipes of the user's own (in the config
-- directory and in KAPI_PATH) that no script was generated for.
local process = require "helpers.process"
local parsing = require "kapi.parsing"
local cli = require "kapi.cli"

local quote = process.quote
local BIN = process.kapi:match("^(.*)/")

local function set(list)
  local out = {}
  for _, v in ipairs(list) do out[v] = true end
  return out
end

local function sorted(list)
  local out = table.move(list, 1, #list, 1, {})
  table.sort(out)
  return out
end

-- The user's own recipes: one with text a shell would expand if it were
-- ever evaluated, one in KAPI_PATH.
local MINE = [[
return {
  summary = "Mine: $(touch %s) `touch %s` 'single' \"double\" \\ back",
  arguments = function(parser)
    parser:option("--flavour", "The flavour"):choices {"salty", "sweet"}
    parser:option("--input", "Read this file"):argname("FILE")
    parser:flag("--loud", "Say it loudly")
  end,
  run = function() end,
}
]]
local OTHER = [[return {summary = "Another", arguments = function(p) p:flag("--other-flag", "x") end, run = function() end}]]

local dir, env

local function setup()
  dir = process.tempdir()
  local pwned = dir .. "/pwned"
  process.write(dir .. "/config/kapi/recipes/mine.lua", MINE:format(pwned, pwned))
  process.write(dir .. "/path/recipes/other.lua", OTHER)
  process.write(dir .. "/work/report.csv", "x\n")
  process.write(dir .. "/work/items/item.json", "{}\n")
  env = process.sandbox_env()
  env.XDG_CONFIG_HOME, env.KAPI_PATH, env.HOME = dir .. "/config", dir .. "/path", dir
  env.PATH = BIN .. ":" .. os.getenv("PATH")
  for _, shell in ipairs {"bash", "zsh", "fish"} do
    local r = process.kapi_run({"completion", shell}, {env = env})
    assert(r.status == 0, r.stderr)
    process.write(dir .. "/" .. shell .. "/" .. (shell == "zsh" and "_kapi" or "kapi." .. shell), r.stdout)
  end
end

local function W(path) return dir .. "/work/" .. path end

-- Each case: the line before the cursor; `exactly` the candidates, or some
-- it `has` and some it `lacks`. Words are compared without a --name= in
-- front (zsh and fish keep it, bash completes the part after =) and
-- without a directory's trailing slash.
local function cases()
  return {
    {"kapi ", has = {"run", "auth", "completion", "help", "recipes", "sandbox"}, lacks = {"report.csv"}},
    {"kapi au", exactly = {"auth"}},
    {"kapi auth ", exactly = {"limits", "login", "logout", "status", "token"}},
    {"kapi auth login --", has = {"--env", "--scope", "--port", "--no-browser", "--help", "--verbose"}},
    {"kapi auth login --no-browser --scope a --", has = {"--scope", "--env"}, lacks = {"--no-browser"}},
    {"kapi auth login --env ", exactly = {"ce", "prod", "sandbox"}},
    {"kapi auth login --env=", exactly = {"ce", "prod", "sandbox"}},
    {"kapi auth login --env=s", exactly = {"sandbox"}},
    {"kapi --verbose auth logout --env p", exactly = {"prod"}},
    {"kapi config ", exactly = {"get", "list", "path", "set", "unset"}},
    {"kapi completion ", exactly = {"bash", "fish", "zsh"}},
    {"kapi run pre", exactly = {"preflight"}},
    {"kapi run ", has = {"preflight", "republish-check", "coupons", "stores", "mine", "other"}},
    {"kapi run m", exactly = {"mine"}},
    {"kapi run preflight --fr", exactly = {"--from"}},
    {"kapi run preflight --from ", exactly = {"content1", "items"}},
    {"kapi run preflight --env ", exactly = {"ce", "prod", "sandbox"}},
    {"kapi --verbose run stores --verbose --li", exactly = {"--limit"}},
    {"kapi run stores --zip ", exactly = {}},
    {"kapi run republish-check --report " .. W("re"), exactly = {W("report.csv")}},
    {"kapi run preflight " .. W("items/it"), exactly = {W("items/item.json")}},
    {"kapi run preflight " .. W("i"), exactly = {W("items")}},
    {"kapi run mine --", has = {"--flavour", "--input", "--loud", "--help"}},
    {"kapi run mine --flavour ", exactly = {"salty", "sweet"}},
    {"kapi run mine --input " .. W("rep"), exactly = {W("report.csv")}},
    {"kapi run other --o", exactly = {"--other-flag"}},
    {"kapi run ./" , lacks = {"preflight"}},
    {"kapi help ", has = {"environment", "auth", "run", "preflight", "mine"}},
    {"kapi help run re", exactly = {"republish-check", "resend"}},
    {"kapi help auth ", has = {"login", "status"}},
    {"kapi sandbox --de", exactly = {"--deny-consent"}},
  }
end

local function normal(word)
  return (word:gsub("^%-%-[%w-]+=", ""):gsub("(.)/$", "%1"))
end

local function check(shell, case, got)
  local words = {}
  for _, w in ipairs(got) do words[#words + 1] = normal(w) end
  local what = ("%s: %q gave {%s}"):format(shell, case[1], table.concat(sorted(words), " "))
  if case.exactly then assert.same(sorted(case.exactly), sorted(words), what) end
  local have = set(words)
  for _, w in ipairs(case.has or {}) do assert.is_true(have[w] == true, what .. ", without " .. w) end
  for _, w in ipairs(case.lacks or {}) do assert.is_nil(have[w], what .. ", with " .. w) end
end

-- The words bash's completion hands the function: split at blanks, with
-- = a word of its own (COMP_WORDBREAKS).
local function bash_words(line)
  local words = {}
  for w in line:gmatch("%S+") do
    local name, rest = w:match("^(%-%-[^=]+)=(.*)$")
    if name then
      words[#words + 1] = name
      words[#words + 1] = "="
      if rest ~= "" then words[#words + 1] = rest end
    else
      words[#words + 1] = w
    end
  end
  if line:match("%s$") or line:match("=$") then words[#words + 1] = "" end
  return words
end

-- Runs each line through a shell's completion, in one process: {line = candidates}.
local function in_bash(lines)
  local input = {}
  for _, line in ipairs(lines) do
    local quoted = {}
    for _, w in ipairs(bash_words(line)) do quoted[#quoted + 1] = quote(w) end
    input[#input + 1] = table.concat(quoted, " ")
  end
  local script = [[
source "$1" || exit 3
while IFS= read -r line; do
  eval "COMP_WORDS=($line)"
  COMP_CWORD=$((${#COMP_WORDS[@]} - 1))
  COMP_LINE="${COMP_WORDS[*]}"
  COMPREPLY=()
  _kapi
  for w in "${COMPREPLY[@]}"; do printf '%s\n' "$w"; done
  echo @@END
done]]
  return process.sh("bash -c " .. quote(script) .. " bash " .. quote(dir .. "/bash/kapi.bash"),
                    {env = env, stdin = table.concat(input, "\n") .. "\n", cwd = dir})
end

local function in_fish(lines)
  local script = [[
source $argv[1]; or exit 3
while read -l line
  complete -C"$line"
  echo @@END
end]]
  return process.sh("fish --no-config -c " .. quote(script) .. " " .. quote(dir .. "/fish/kapi.fish"),
                    {env = env, stdin = table.concat(lines, "\n") .. "\n", cwd = dir})
end

local function answers(r, lines)
  assert.equal(0, r.status, r.stderr)
  local out, i, current = {}, 1, {}
  for l in r.stdout:gmatch("([^\n]*)\n") do
    if l == "@@END" then
      out[lines[i]] = current
      i, current = i + 1, {}
    else
      current[#current + 1] = l:match("^([^\t]*)")
    end
  end
  assert.equal(#lines + 1, i, r.stdout .. r.stderr)
  return out
end

local function lines_of(list)
  local out = {}
  for _, case in ipairs(list) do out[#out + 1] = case[1] end
  return out
end

describe("kapi completion", function()
  setup(setup)
  teardown(function() process.cleanup(dir) end)

  it("prints a script for each shell that the shell reads without error", function()
    local r = process.sh("bash -n " .. quote(dir .. "/bash/kapi.bash") .. " && zsh -n " .. quote(dir .. "/zsh/_kapi")
                         .. " && fish --no-config -n " .. quote(dir .. "/fish/kapi.fish"))
    assert.equal(0, r.status, r.stderr)
    assert.matches("^#compdef kapi\n", (io.open(dir .. "/zsh/_kapi"):read("a")))
  end)

  it("refuses a missing or unknown shell as a usage error", function()
    local r = process.kapi_run({"completion"})
    assert.equal(2, r.status)
    assert.matches("^kapi: which shell%? bash, zsh or fish\nUsage: kapi completion", r.stderr)
    r = process.kapi_run({"completion", "tcsh"})
    assert.equal(2, r.status)
    assert.matches("must be one of .bash., .zsh., .fish.", r.stderr)
    assert.equal("", r.stdout)
  end)

  it("registers the function with bash (complete -p)", function()
    local r = process.sh("bash -c " .. quote('source "$1" && complete -p kapi') .. " bash " .. quote(dir .. "/bash/kapi.bash"))
    assert.equal("complete -F _kapi kapi\n", r.stdout)
  end)

  it("completes commands, options, choices, files, recipes and their options in bash", function()
    local list = cases()
    local got = answers(in_bash(lines_of(list)), lines_of(list))
    for _, case in ipairs(list) do check("bash", case, got[case[1]]) end
  end)

  it("completes the same in fish (complete -C), with descriptions", function()
    local list = cases()
    local r = in_fish(lines_of(list))
    local got = answers(r, lines_of(list))
    for _, case in ipairs(list) do check("fish", case, got[case[1]]) end
    assert.matches("\nlogin\tLog in as a customer", r.stdout)
  end)

  it("completes the same in an interactive zsh, with descriptions", function()
    for _, case in ipairs(cases()) do
      local r = process.sh("zsh -f " .. quote(process.source_dir .. "/tests/helpers/zsh_complete.zsh") .. " "
                           .. quote(dir .. "/zsh") .. " " .. quote(case[1]), {env = env, cwd = dir})
      assert.equal(0, r.status, case[1] .. ": " .. r.stderr)
      local got = {}
      for l in r.stdout:gmatch("[^\n]+") do got[#got + 1] = l:match("^([^\t]*)") end
      check("zsh", case, got)
      if case[1] == "kapi auth " then assert.matches("login%s+%-%- Log in as a customer", r.stdout) end
    end
  end)

  it("never expands what a recipe's text holds", function()
    in_bash({"kapi run ", "kapi run mine --", "kapi help "})
    in_fish({"kapi run ", "kapi run mine --", "kapi help "})
    assert.is_nil(io.open(dir .. "/pwned"), "a recipe's summary was run as a command")
  end)

  it("offers every option of every command, subcommand and recipe that --help shows", function()
    local lines, wanted = {}, {}
    local function walk(words, d)
      local line = "kapi " .. table.concat(words, " ") .. " --"
      lines[#lines + 1] = line
      wanted[line] = {}
      for _, o in ipairs(d.options) do
        if not o.hidden then
          for _, name in ipairs(o.names) do
            if name:sub(1, 2) == "--" then table.insert(wanted[line], name) end
          end
        end
      end
      for _, c in ipairs(d.commands) do
        local sub = table.move(words, 1, #words, 1, {})
        sub[#sub + 1] = c.name:match("(%S+)$")
        walk(sub, c)
      end
    end
    for _, name in ipairs(cli.commands) do
      local parser = parsing.command_parser(name)
      if parser then walk({name}, parsing.describe(parser)) end
    end
    local run = require "kapi.commands.run"
    for _, recipe in ipairs(require("kapi.recipes").list()) do
      walk({"run", recipe.name}, parsing.describe(run.parser(assert(require("kapi.recipes").load(recipe.path)),
                                                              recipe.name)))
    end
    assert.is_true(#lines > 20)
    local got = answers(in_bash(lines), lines)
    for _, line in ipairs(lines) do check("bash", {line, has = wanted[line]}, got[line]) end
    -- and the hidden helper is never offered
    check("bash", {"kapi completion --", lacks = {"--spec"}}, answers(in_bash({"kapi completion --"}),
                                                                      {"kapi completion --"})["kapi completion --"])
  end)
end)
