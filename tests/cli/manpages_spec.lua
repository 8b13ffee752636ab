-- The manual pages the build generated (build/generated/man), and kapi help
-- environment: each page renders without a warning from groff or man,
-- is what the definitions give today, and holds every command, option,
-- recipe, API entry and environment variable it is derived from.
local process = require "helpers.process"
local cli = require "kapi.cli"
local parsing = require "kapi.parsing"
local manpages = require "kapi.manpages"
local environment = require "kapi.environment"

local quote = process.quote
local GENERATED = process.kapi:match("^(.*)/") .. "/generated"

local function read(path)
  local f = assert(io.open(path, "rb"))
  local text = f:read("a")
  f:close()
  return text
end

-- A page as man shows it, 80 columns, plain text.
local function rendered(name, section)
  local r = process.sh(("MANWIDTH=80 man --warnings -l %s 2>&1 | col -b"):format(
    quote(("%s/man/man%d/%s.%d.gz"):format(GENERATED, section, name, section))), {env = {LC_ALL = "C.UTF-8"}})
  assert.equal(0, r.status, r.stderr)
  return r.stdout
end

local function expected_pages()
  local out = {{"kapi", 1}, {"kapi-lua", 3}, {"kapi-recipes", 7}}
  for _, name in ipairs(cli.commands) do out[#out + 1] = {"kapi-" .. name, 1} end
  return out
end

describe("the manual pages", function()
  it("are generated for kapi, every command, the recipes and the Lua API, and render without warnings", function()
    for _, page in ipairs(expected_pages()) do
      local file = ("%s/man/man%d/%s.%d.gz"):format(GENERATED, page[2], page[1], page[2])
      local r = process.sh(("gzip -dc %s | groff -ww -man -z -Tutf8 && MANWIDTH=80 man --warnings -l %s >/dev/null")
                           :format(quote(file), quote(file)), {env = {LC_ALL = "C.UTF-8"}})
      assert.equal(0, r.status, file .. ": " .. r.stderr)
      assert.equal("", r.stderr, file)
    end
  end)

  it("are what the definitions give today (the build is not stale)", function()
    for _, page in ipairs(manpages.pages()) do
      local file = ("%s/man-src/%s.%d.scd"):format(GENERATED, page.name, page.section)
      assert.is_true(read(file) == page.source, file .. " differs from kapi.manpages' page: build again")
    end
  end)

  it("give every command its page with its subcommands and options, as --help has them", function()
    local main = rendered("kapi", 1)
    for _, name in ipairs(cli.commands) do
      assert.matches("\n       " .. name:gsub("%-", "%%-") .. "\n", main, 1, false)
      local parser = parsing.command_parser(name)
      if parser then
        local page = rendered("kapi-" .. name, 1):gsub("‐\n%s*", ""):gsub("%s+", " ")
        local function walk(d, words)
          for _, o in ipairs(d.options) do
            if not o.hidden then assert.is_truthy(page:find(o.names[#o.names], 1, true), name .. ": " .. o.names[#o.names]) end
          end
          for _, c in ipairs(d.commands) do
            local sub = words .. " " .. c.name:match("(%S+)$")
            assert.is_truthy(page:find(sub, 1, true), sub)
            walk(c, sub)
          end
        end
        walk(parsing.describe(parser), "kapi " .. name)
      end
    end
  end)

  it("list every shipped recipe in kapi-recipes(7), with its options and description", function()
    local page = rendered("kapi-recipes", 7):gsub("‐\n%s*", ""):gsub("%s+", " ")
    local run = require "kapi.commands.run"
    local recipes = require "kapi.recipes"
    local count = 0
    for _, r in ipairs(recipes.list()) do
      if r.path:find(require("kapi.core").script_dir, 1, true) == 1 then
        count = count + 1
        local recipe = assert(recipes.load(r.path))
        assert.is_truthy(page:find(" " .. r.name:upper() .. " kapi run " .. r.name, 1, true), r.name)
        for _, o in ipairs(parsing.describe(run.parser(recipe, r.name)).options) do
          assert.is_truthy(page:find(o.names[#o.names], 1, true), r.name .. " " .. o.names[#o.names])
        end
        local first = recipe.description:match("^(%S+ %S+ %S+)")
        assert.is_truthy(page:find(first, 1, true), r.name .. ": " .. first)
      end
    end
    assert.is_true(count >= 8)
  end)

  it("hold every entry of the Lua API in kapi-lua(3), as help() has it", function()
    local page = read(GENERATED .. "/man-src/kapi-lua.3.scd")
    require "kapi"
    require "kapi.repl"
    local entries = require("kapi.doc").list()
    assert.is_true(#entries > 50)
    for _, entry in ipairs(entries) do
      local signature = entry.text:match("^([^\n]*)")
      assert.is_truthy(page:find("## " .. manpages.escape(signature), 1, true), signature)
    end
  end)

  it("are found by man -M in the build tree", function()
    local r = process.sh("MANWIDTH=80 man -M " .. quote(GENERATED .. "/man") .. " 7 kapi-recipes")
    assert.equal(0, r.status, r.stderr)
    assert.matches("^KAPI%-RECIPES%(7%)", r.stdout, 1, r.stderr)
  end)
end)

describe("kapi help environment", function()
  it("documents every environment variable kapi's Lua and C code read", function()
    local documented = {}
    for _, name in ipairs(environment.names()) do documented[name] = true end
    local files = process.sh("find scripts host bindings -name '*.lua' -o -name '*.c'", {cwd = process.source_dir})
    local found = 0
    for file in files.stdout:gmatch("[^\n]+") do
      local text = read(process.source_dir .. "/" .. file)
      for name in text:gmatch("getenv%(%s*\"([%w_]+)\"") do
        found = found + 1
        assert.is_true(documented[name] == true, file .. " reads " .. name .. ", which kapi.environment does not document")
      end
    end
    assert.is_true(found >= 15)
  end)

  it("lists them with what each does and its default, and so does kapi(1)", function()
    local r = process.kapi_run({"help", "environment"})
    assert.equal(0, r.status, r.stderr)
    local page = rendered("kapi", 1)
    local environment_section = page:match("\nENVIRONMENT\n(.-)\nFILES\n")
    assert.is_truthy(environment_section, page)
    for _, name in ipairs(environment.names()) do
      assert.matches("\n  [^\n]*" .. name, r.stdout)
      assert.is_truthy(environment_section:find(name, 1, true), name)
    end
    assert.matches("KAPI_SANDBOX_URL The address of a running kapi sandbox.-Default: a sandbox started",
                   (r.stdout:gsub("%s+", " ")))
    assert.equal(2, process.kapi_run({"help", "environment", "extra"}).status)
  end)
end)
