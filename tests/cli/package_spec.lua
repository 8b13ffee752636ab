-- Installing kapi, as make install and the .deb do it, and running what
-- was installed: make install into a DESTDIR (the Lua tree and the C
-- modules found beside the executable), make uninstall, then make
-- package's .deb built (cpack into a scratch directory), checked by
-- lintian, unpacked into a scratch root with dpkg -x and run from there:
-- kapi version, a recipe on the built-in sandbox, its manual page and a
-- completion.
local process = require "helpers.process"

local quote = process.quote
local BIN = process.kapi:match("^(.*)/")

local function ok(r, what)
  assert.equal(0, r.status, (what or "") .. "\n" .. r.stdout .. r.stderr)
  return r
end

local function exists(path)
  local f = io.open(path, "rb")
  if f then f:close() end
  return f ~= nil
end

-- What an installed kapi must hold, under root (DESTDIR/usr or the .deb's /usr).
local INSTALLED = {
  "bin/kapi", "share/kapi/kapi/cli.lua", "share/kapi/recipes/preflight.lua", "lib/kapi/kapi/core/http.so",
  -- the Lua tree and lua-argparse compiled for /usr (host/host.c)
  "lib/kapi/compiled/usr/share/kapi/kapi/cli.luac", "lib/kapi/compiled/usr/share/kapi/recipes/preflight.luac",
  "lib/kapi/compiled/usr/share/lua/5.4/argparse.luac",
  "share/man/man1/kapi.1.gz", "share/man/man1/kapi-run.1.gz", "share/man/man1/kapi-completion.1.gz",
  "share/man/man3/kapi-lua.3.gz", "share/man/man7/kapi-recipes.7.gz",
  "share/bash-completion/completions/kapi", "share/zsh/vendor-completions/_kapi",
  "share/fish/vendor_completions.d/kapi.fish",
  "share/doc/kapi/README.md", "share/doc/kapi/copyright", "share/doc/kapi/changelog.gz",
  "share/doc/kapi/docs/usage.md", "share/doc/kapi/examples/demo.lua", "share/doc/kapi/examples/items/clean-case.json",
}

-- Runs the kapi installed under usr (a prefix) as a user would, on the
-- built-in sandbox: its version and tree, a recipe, its manual page, a
-- completion that asks the installed kapi for the recipes.
local function runs_from(usr)
  for _, path in ipairs(INSTALLED) do assert.is_true(exists(usr .. "/" .. path), usr .. "/" .. path) end
  assert.is_false(exists(usr .. "/share/kapi/recipes/README.md"))
  local env = process.sandbox_env()
  env.PATH = usr .. "/bin:/usr/bin:/bin"
  local r = ok(process.sh("kapi version", {env = env}))
  assert.matches("^kapi %d+%.%d+%.%d+\n", r.stdout)
  assert.matches("\nscripts: " .. (usr .. "/share/kapi"):gsub("%p", "%%%0") .. "\n", r.stdout)
  r = ok(process.sh("kapi run stores --zip 45202 --limit 2 --json", {env = env}), "a recipe")
  assert.equal(2, #require("cjson").decode(r.stdout))
  r = ok(process.sh("kapi -e 'print(require(\"kapi.core.crypto\") ~= nil, require(\"argparse\") ~= nil)'", {env = env}))
  assert.equal("true\ttrue\n", r.stdout)
  r = ok(process.sh(("MANWIDTH=80 man --warnings -l %s/share/man/man1/kapi.1.gz"):format(quote(usr)),
                    {env = {LC_ALL = "C.UTF-8"}}))
  assert.matches("^KAPI%(1%)", r.stdout)
  assert.equal("", r.stderr)
  r = ok(process.sh(("MANWIDTH=80 man -M %s/share/man kapi-run"):format(quote(usr))))
  assert.matches("^KAPI%-RUN%(1%)", r.stdout)
  r = ok(process.sh("bash -c " .. quote('source "$1" && COMP_WORDS=(kapi run pre) COMP_CWORD=2 && _kapi && echo "${COMPREPLY[*]}"') .. " bash "
                    .. quote(usr .. "/share/bash-completion/completions/kapi"), {env = env}))
  assert.equal("preflight\n", r.stdout)
end

describe("make install", function()
  local dest, saved
  setup(function()
    dest = process.tempdir()
    -- cmake --install writes the build's install_manifest.txt: the one a
    -- real make install left is put back afterwards, for make uninstall.
    saved = process.sh("cat " .. quote(BIN .. "/install_manifest.txt")).stdout
  end)
  teardown(function()
    if saved ~= "" then process.write(BIN .. "/install_manifest.txt", saved) end
    process.cleanup(dest)
  end)

  it("installs into a DESTDIR a kapi that runs from there, and make uninstall removes it", function()
    ok(process.sh("cmake --install " .. quote(BIN) .. " --prefix /usr >/dev/null", {env = {DESTDIR = dest}}))
    runs_from(dest .. "/usr")
    ok(process.sh(("make -s -C %s uninstall BUILD=%s DESTDIR=%s"):format(quote(process.source_dir), quote(BIN),
                                                                        quote(dest))))
    local left = ok(process.sh("find " .. quote(dest) .. " -type f -o -name '*kapi*'")).stdout
    assert.equal("", left)
  end)
end)

describe("make package", function()
  local dir, deb
  setup(function()
    dir = process.tempdir()
    ok(process.sh(("cpack --config %s/CPackConfig.cmake -B %s >/dev/null"):format(quote(BIN), quote(dir .. "/out"))),
       "cpack")
    deb = process.sh("ls " .. quote(dir .. "/out") .. "/kapi_*.deb").stdout:match("[^\n]+")
  end)
  teardown(function() process.cleanup(dir) end)

  it("builds a .deb that depends on its libraries and the Lua modules it loads", function()
    assert.is_truthy(deb)
    local depends = ok(process.sh("dpkg-deb -f " .. quote(deb) .. " Depends")).stdout
    for _, package in ipairs {"lua-argparse", "libc6", "libcurl4", "libedit2", "libmicrohttpd12", "libssl3",
                              "libexpat1", "libsqlite3-0"} do
      assert.matches("%f[%w]" .. package:gsub("%-", "%%-") .. "%f[^%w%-]", depends)
    end
    -- every dependency is a package this machine has installed
    for name in depends:gmatch("([%w][%w.+-]*)") do
      if not name:match("^%d") then ok(process.sh("dpkg-query -W " .. quote(name) .. " >/dev/null"), name) end
    end
    assert.equal("kapi\n", ok(process.sh("dpkg-deb -f " .. quote(deb) .. " Package")).stdout)
  end)

  it("passes lintian without errors", function()
    local r = process.sh("lintian --no-tag-display-limit " .. quote(deb) .. " 2>&1")
    assert.is_nil(r.stdout:find("\nE: ") or r.stdout:find("^E: "), r.stdout)
    assert.is_truthy(r.status == 0, r.stdout)
  end)

  it("unpacks into a scratch root a kapi that runs from there", function()
    ok(process.sh("dpkg -x " .. quote(deb) .. " " .. quote(dir .. "/root")))
    runs_from(dir .. "/root/usr")
    -- man pages and the changelog compressed as Debian wants them
    local listing = ok(process.sh("dpkg-deb -c " .. quote(deb))).stdout
    assert.is_nil(listing:find("%.1\n"), listing)
    assert.matches("%./usr/share/doc/kapi/changelog%.gz\n", listing)
  end)
end)
