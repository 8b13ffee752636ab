-- kapi packaging/generate.lua OUT SCDOC: what the build derives from kapi's
-- own definitions (CMakeLists.txt runs it with the kapi just built, none
-- of the builder's recipes or settings): the manual pages, rendered by
-- scdoc and compressed as Debian wants them (OUT/man/manN/NAME.N.gz, their
-- scdoc sources in OUT/man-src), and the completion scripts
-- (OUT/completions: kapi for bash, _kapi for zsh, kapi.fish).
local out, scdoc = ...
assert(out and scdoc, "usage: kapi packaging/generate.lua OUT SCDOC")
local fs = require "kapi.core.fs"

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function write(path, text)
  local f = assert(io.open(path, "w"))
  f:write(text)
  assert(f:close())
end

os.execute("rm -rf " .. quote(out .. "/man") .. " " .. quote(out .. "/man-src"))
assert(fs.mkdirs(out .. "/man-src", 493))
for _, page in ipairs(require("kapi.manpages").pages()) do
  local file = ("%s.%d"):format(page.name, page.section)
  local source = out .. "/man-src/" .. file .. ".scd"
  write(source, page.source)
  local dir = out .. "/man/man" .. page.section
  assert(fs.mkdirs(dir, 493))
  assert(os.execute(("%s < %s > %s"):format(quote(scdoc), quote(source), quote(dir .. "/" .. file))),
         "scdoc could not render " .. source)
  assert(os.execute("gzip -9nf " .. quote(dir .. "/" .. file)))
end

assert(fs.mkdirs(out .. "/completions", 493))
local completion = require "kapi.completion"
write(out .. "/completions/kapi", completion.script("bash"))
write(out .. "/completions/_kapi", completion.script("zsh"))
write(out .. "/completions/kapi.fish", completion.script("fish"))
