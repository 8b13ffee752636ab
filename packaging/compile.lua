-- Compiles Lua files for the host (host/host.c, "Lua files, precompiled"):
-- every .lua file under TREE, and the file each module NAME would be
-- required from, into OUT. The file named /a/b.lua becomes OUT/a/b.luac,
-- with its debug information (lines for tracebacks), the chunk name
-- "@/a/b.lua", and the file's modification time, which is how the host
-- knows the copy is still the file's. A file of TREE is named as if TREE
-- were NAMED (default TREE): at install, the staged tree is compiled for
-- the place it is installed to.
--   kapi packaging/compile.lua OUT TREE [NAMED] [--module NAME]...
local out, tree, named, modules = nil, nil, nil, {}
local positional = {}
local i = 1
while arg[i] do
  if arg[i] == "--module" and arg[i + 1] then
    modules[#modules + 1] = arg[i + 1]
    i = i + 2
  else
    positional[#positional + 1] = arg[i]
    i = i + 1
  end
end
out, tree, named = positional[1], positional[2], positional[3] or positional[2]
if not (out and tree and named:match("^/")) then
  io.stderr:write("usage: kapi packaging/compile.lua OUT TREE [NAMED] [--module NAME]... (NAMED absolute)\n")
  os.exit(2)
end

local function quote(s) return "'" .. s:gsub("'", "'\\''") .. "'" end

local function run(command)
  if not os.execute(command) then error("failed: " .. command, 0) end
end

-- Compiles the file at path, to be loaded as name. The copy is written
-- whole under another name and renamed, so a kapi running meanwhile reads
-- an old copy or a new one, never half of one.
local function compile(path, name)
  local f = assert(io.open(path, "rb"))
  -- As luaL_loadfile does, a first line starting with # (#!) is skipped;
  -- its newline stays, and with it the line numbers.
  local text = f:read("a"):gsub("^#[^\n]*", "")
  f:close()
  local chunk = assert(load(text, "@" .. name, "t"))
  local target = out .. name .. "c"
  run("mkdir -p " .. quote(target:match("^(.*)/")))
  local partial = target .. ".part"
  local w = assert(io.open(partial, "wb"))
  assert(w:write(string.dump(chunk)))
  assert(w:close())
  run(("touch -r %s %s"):format(quote(path), quote(partial)))
  assert(os.rename(partial, target))
end

local list = assert(io.popen("cd " .. quote(tree) .. " && find . -name '*.lua' -type f | sort"))
local count = 0
for line in list:lines() do
  local relative = line:gsub("^%./", "")
  compile(tree .. "/" .. relative, named .. "/" .. relative)
  count = count + 1
end
assert(list:close())
if count == 0 then error("no Lua files under " .. tree, 0) end
for _, name in ipairs(modules) do
  local path = assert(package.searchpath(name, package.path))
  if path:match("^/") then compile(path, path) end
end
