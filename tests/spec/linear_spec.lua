-- Text from outside (command-line values, environment variables, HTTP
-- answers, CIC messages, MCP requests) is read in time linear in its
-- length. Each place below read it with a pattern or a loop that was
-- quadratic (or cubic) in a run of it: each is checked against the plain
-- pattern as it was written, on random short texts, and given 100,000
-- characters of the text that was slow, within a bound that only tells
-- linear from quadratic (the slow forms took from seconds to hours).
local text = require "kapi.text"
local parsing = require "kapi.parsing"
local recipe = require "kapi.recipe"
local config = require "kapi.config"
local paginate = require "kapi.paginate"
local http = require "kapi.http"
local output = require "kapi.output"
local certification = require "kapi.certification"
local cic = require "kapi.cic"
local limits = require "kapi.limits"
local store = require "kapi.auth.store"
local errors = require "kapi.errors"
local json = require "kapi.json"
local core = require "kapi.core"
local process = require "helpers.process"

local LONG = 100000
local BOUND = 5 -- seconds

-- Random text of 0 to max pieces, the same every run for a given seed.
local function random_text(pieces, max)
  local out = {}
  for i = 1, math.random(0, max or 12) do out[i] = pieces[math.random(#pieces)] end
  return table.concat(out)
end

local function within_bound(what, fn, ...)
  local started = os.clock()
  local result = table.pack(fn(...))
  local took = os.clock() - started
  assert.is_true(took < BOUND, ("%s: %.1f s"):format(what, took))
  return table.unpack(result, 1, result.n)
end

-- The outcome of fn(...): true and its results, or false and the message
-- of what it raised (without the place it was raised from).
local function outcome(fn, ...)
  local result = table.pack(pcall(fn, ...))
  if not result[1] then return {false, (errors.message(result[2]):gsub("^[^\n]-:%d+: ", ""))} end
  return result
end

describe("kapi.text", function()
  it("trim_end_char gives what gsub(char .. '+$', '') gives", function()
    math.randomseed(30)
    for _ = 1, 3000 do
      local s = random_text({"/", "//", "a", " ", "x/"}, 10)
      assert.equal((s:gsub("/+$", "")), text.trim_end_char(s, "/"), s)
    end
    local slashes = "a" .. ("/"):rep(LONG) .. "b"
    assert.equal(slashes, within_bound("a///b", text.trim_end_char, slashes, "/"))
  end)

  it("after_last_colon gives what match(':%s*([^:]+)$') gives", function()
    math.randomseed(31)
    for _ = 1, 3000 do
      local s = random_text({":", " ", "  ", "\t", "\n", "a", "b c", "/"}, 12)
      assert.equal(s:match(":%s*([^:]+)$"), text.after_last_colon(s), ("%q"):format(s))
    end
    local spaces = "dir:" .. (" "):rep(LONG) .. "x: No such file or directory"
    assert.equal("No such file or directory", within_bound("colon, spaces", text.after_last_colon, spaces))
  end)

  it("contains says what string.find(text, part, 1, true) says, for short parts and long ones", function()
    math.randomseed(32)
    for _ = 1, 3000 do
      local s = random_text({"a", "b", "aa", "ab", "aaaaaaaaaaaaaaaaaaaa"}, 40)
      local part
      if math.random(2) == 1 and #s > 0 then -- often a piece of the text itself
        local from = math.random(#s)
        part = s:sub(from, math.random(from, #s))
      else
        part = random_text({"a", "b", "aaaaaaaaaaaaaaaaaaaa"}, 12)
      end
      assert.equal(s:find(part, 1, true) ~= nil, text.contains(s, part), s .. " / " .. part)
    end
    local many, almost = ("a"):rep(LONG), ("a"):rep(LONG // 2) .. "b"
    assert.is_false(within_bound("a... / a...b", text.contains, many, almost))
    assert.is_true(text.contains(many .. "b", almost))
  end)
end)

describe("kapi.parsing.decimal", function()
  local function decimal_as_written(s)
    if s:match("^%s*[-+]?%d+%.?%d*%s*$") or s:match("^%s*[-+]?%.%d+%s*$") then return tonumber(s) end
  end

  it("takes the numbers the pattern as written takes", function()
    math.randomseed(33)
    for _ = 1, 4000 do
      local s = random_text({"1", "9", "0", ".", "-", "+", " ", "\t", "x", "e", "12"}, 10)
      assert.equal(decimal_as_written(s), parsing.decimal(s), ("%q"):format(s))
    end
  end)

  it("reads 100,000 digits and an x in time linear in them", function()
    assert.is_nil(within_bound("1...1x", parsing.decimal, ("1"):rep(LONG) .. "x"))
    assert.is_nil(within_bound("1...1 x", parsing.decimal, ("1"):rep(LONG // 2) .. (" "):rep(LONG // 2) .. "x"))
  end)
end)

describe("recipe.place's --near", function()
  -- point() as it was written: "^%s*([^,]+),([^,]+)$", then each number
  -- named as that capture gave it.
  local function place_as_written(near)
    local lat, lon = near:match("^%s*([^,]+),([^,]+)$")
    local y, x = lat and parsing.decimal(lat), lon and parsing.decimal(lon)
    if not (y and x) then
      return outcome(recipe.usage, "--near %s: expected LAT,LON in degrees, e.g. 39.10,-84.51", errors.excerpt(near))
    end
    if math.abs(y) > 90 then
      return outcome(recipe.usage, "%s %s: expected degrees from -90 to 90", "--near latitude", errors.excerpt(lat))
    end
    if math.abs(x) > 180 then
      return outcome(recipe.usage, "%s %s: expected degrees from -180 to 180", "--near longitude", errors.excerpt(lon))
    end
    return {true, {lat = y, lon = x, latlong = ("%.6f,%.6f"):format(y, x), named = "--near " .. near}}
  end

  it("reads LAT,LON as the pattern as written splits it", function()
    math.randomseed(34)
    for _ = 1, 3000 do
      local near = random_text({" ", "  ", "\t", ",", "1", "9", "-", ".", "5", "x", "95", "200", "+"}, 8)
      local expected = place_as_written(near)
      local got = outcome(recipe.place, {near = near})
      if got[1] then
        got[2] = {lat = got[2].lat, lon = got[2].lon, latlong = got[2].latlong, named = got[2].named}
      end
      assert.same(expected, {got[1], got[2]}, ("%q"):format(near))
    end
  end)

  it("reads 100,000 spaces in time linear in them", function()
    local got = within_bound("--near spaces", outcome, recipe.place, {near = (" "):rep(LONG)})
    assert.is_false(got[1])
    assert.matches("expected LAT,LON", got[2])
    got = within_bound("--near spaces,1", outcome, recipe.place, {near = (" "):rep(LONG) .. "1,2"})
    assert.same({1, 2}, {got[2].lat, got[2].lon})
  end)
end)

describe("KAPI_SANDBOX_URL", function()
  local function sandbox_url(url)
    local getenv = os.getenv
    os.getenv = function(name) if name == "KAPI_SANDBOX_URL" then return url end return getenv(name) end
    local result = outcome(config.sandbox_url)
    os.getenv = getenv
    return result
  end
  local function sandbox_url_as_written(url)
    if not url:match("^https?://[%w.%-]+[:%d]*/?$") and not url:match("^https?://%[[%x:]+%][:%d]*/?$") then
      return false
    end
    return (url:gsub("/$", ""))
  end

  it("is taken as the pattern as written takes it", function()
    math.randomseed(35)
    for _ = 1, 3000 do
      local url = (math.random(2) == 1 and "http://" or "https://")
                  .. random_text({"1", "a", ".", "-", ":", "/", "!", "[", "]", "::", "8080", "_"}, 8)
      local expected, got = sandbox_url_as_written(url), sandbox_url(url)
      if expected then
        assert.same({true, expected}, {got[1], got[2]}, url)
      else
        assert.is_false(got[1], url)
        assert.matches("expected the base URL of a kapi sandbox", got[2])
      end
    end
  end)

  it("of 100,000 digits and a ! is refused in time linear in it", function()
    local got = within_bound("http://1...1!", sandbox_url, "http://" .. ("1"):rep(LONG) .. "!")
    assert.is_false(got[1])
  end)
end)

describe("paginate.link", function()
  local function link_header(value) return http.new_headers("Link: " .. value .. "\r\n") end
  -- The URL a Link header sends the next page to, as the pattern as
  -- written finds it.
  local function next_as_written(value)
    local next_url
    for _, v in ipairs(link_header(value):all("link")) do
      for target, params in v:gmatch("<([^>]+)>([^,]*)") do
        if params:match('rel="?next"?') then next_url = target end
      end
    end
    return next_url
  end
  -- The URL paginate.link asks for after a first page with this Link.
  local function next_asked(value)
    local asked = {}
    local pages = paginate.link {url = "first", fetch = function(url)
      asked[#asked + 1] = url
      if #asked > 1 then return {}, {headers = link_header("")} end
      return {1}, {headers = link_header(value)}
    end}
    for _ in pages do end
    return asked[2]
  end

  it("follows the link the pattern as written finds", function()
    math.randomseed(36)
    for _ = 1, 3000 do
      local value = random_text({"<", ">", ",", ";", " ", 'rel="next"', "rel=next", 'rel="prev"', "a", "/b", '"'}, 12)
      assert.equal(next_as_written(value), next_asked(value), value)
    end
  end)

  it("reads a value of 100,000 < in time linear in it", function()
    assert.is_nil(within_bound("<<<", next_asked, ("<"):rep(LONG)))
    assert.equal("u", within_bound("<u><<<", next_asked, '<u>; rel="next", ' .. ("<"):rep(LONG)))
  end)
end)

describe("the sandbox's --faults", function()
  local faults = require "kapi.sandbox.faults"
  local function rate_as_written(rate) return rate:match("^%d*%.?%d+$") and tonumber(rate) end
  local function rate_read(rate)
    local parsed = faults.parse("5xx=" .. rate)
    return parsed and parsed["5xx"].rate
  end

  it("takes the rates the pattern as written takes", function()
    math.randomseed(39)
    for _ = 1, 4000 do
      local rate = random_text({"0", "1", "5", ".", "..", "x", "-"}, 6)
      local expected = rate_as_written(rate)
      if expected and expected > 1 then expected = nil end
      assert.equal(expected, rate_read(rate), ("%q"):format(rate))
    end
  end)

  it("refuses a rate of 100,000 digits and an x in time linear in them", function()
    local parsed, why = within_bound("digits", faults.parse, "5xx=" .. ("1"):rep(LONG) .. "x")
    assert.is_nil(parsed)
    assert.equal("the rate of 5xx must be between 0 and 1", why)
  end)
end)

describe("an error page's <title>", function()
  local function reason_as_written(body)
    local title = body:match("<[Tt][Ii][Tt][Ll][Ee]>%s*(.-)%s*</")
    local line = title or body:match("^%s*([^\r\n]*)") or ""
    if #line > 200 then line = line:sub(1, 200) .. "..." end
    return line
  end

  it("is read as the pattern as written reads it", function()
    math.randomseed(37)
    for _ = 1, 4000 do
      local body = random_text({"<title>", "<TITLE>", "<TiTlE>", "</", "<", "/", ">", " ", "\t", "\n", "a", "b c"}, 14)
      assert.equal(reason_as_written(body), http.parse_error_body(body).reason, ("%q"):format(body))
    end
  end)

  it("of 100,000 spaces with no end is read in time linear in them", function()
    -- The pattern as written was cubic here: 600 spaces took 0.7 s.
    local reason = within_bound("<title> spaces", http.parse_error_body, "<title>" .. (" "):rep(LONG) .. "x").reason
    assert.equal("<title>", reason:sub(1, 7))
    within_bound("<title><title>...", http.parse_error_body, ("<title>"):rep(LONG // 7))
  end)
end)

describe("output.wrap", function()
  -- wrap as it was written: the rest of a long word cut and measured
  -- again for each piece (and a piece that starts inside a character cut
  -- by bytes, where utf8.offset raised).
  local function text_width(s) return utf8.len(s) or #s end
  local function wrap_as_written(s, width)
    local lines, line = {}, ""
    for word in s:gmatch("%S+") do
      while text_width(word) > width do
        if line ~= "" then lines[#lines + 1] = line; line = "" end
        local b = word:byte()
        local cut = (b >= 0x80 and b < 0xC0) and width + 1 or utf8.offset(word, width + 1) or #word + 1
        lines[#lines + 1] = word:sub(1, cut - 1)
        word = word:sub(cut)
      end
      if line == "" then line = word
      elseif text_width(line) + 1 + text_width(word) <= width then line = line .. " " .. word
      else lines[#lines + 1] = line; line = word end
    end
    if line ~= "" or #lines == 0 then lines[#lines + 1] = line end
    return lines
  end

  it("cuts lines as it did, in UTF-8 and in bytes that are not UTF-8", function()
    math.randomseed(38)
    for _ = 1, 3000 do
      local s = random_text({"a", "bb", " ", "  ", "é", "€", "😀", "\xff", "\x80", "\xe2\x82", "word"}, 30)
      local width = math.random(1, 12)
      assert.same(outcome(wrap_as_written, s, width), outcome(output.wrap, s, width), ("%q %d"):format(s, width))
    end
  end)

  it("cuts a word that starts with a byte no character starts with, by bytes", function()
    assert.same({"\x80aaa", "aaaa", "a"}, output.wrap("\x80aaaaaaaa", 4))
    local rendered = output.render_table({{d = "\x80" .. ("a"):rep(60)}}, {{key = "d", title = "D", wrap = true}},
                                         {width = 30})
    assert.matches("\x80a+\n", rendered)
  end)

  it("cuts a word of 100,000 characters in time linear in it", function()
    local lines = within_bound("a long word", output.wrap, ("a"):rep(LONG), 20)
    assert.equal(LONG // 20, #lines)
    lines = within_bound("a long word in UTF-8", output.wrap, ("é"):rep(LONG), 20)
    assert.equal(LONG // 20, #lines)
    local rendered = within_bound("a table", output.render_table, {{d = ("a"):rep(LONG)}},
                                  {{key = "d", title = "D", wrap = true}}, {width = 40})
    assert.is_true(#rendered > LONG)
  end)
end)

describe("certification.explain", function()
  -- A detail's words as they were put together: the code before the
  -- text unless string.find finds it there.
  local function words_as_written(d)
    local s = d.long_description ~= "" and d.long_description or d.description
    return (d.code ~= "" and not s:find(d.code, 1, true)) and (d.code .. ": " .. s) or s
  end

  it("quotes a CIC's code with its words unless they hold it", function()
    math.randomseed(39)
    for _ = 1, 2000 do
      local words = random_text({"a", "b", "ab", ("a"):rep(30)}, 20)
      local code = math.random(2) == 1 and #words > 0 and words:sub(math.random(#words)) or
                   random_text({"a", "b", ("a"):rep(30)}, 6)
      local d = {code = code, description = "", long_description = words}
      assert.equal(certification.diagnose(words_as_written(d)).cause,
                   certification.explain({details = {d}}).cause, code .. " / " .. words)
    end
  end)

  it("looks for a long code in long words in time linear in them", function()
    local d = {code = ("a"):rep(LONG // 2) .. "b", description = "", long_description = ("a"):rep(LONG)}
    local why = within_bound("a...b in a...", certification.explain, {details = {d}})
    assert.equal("Kroger said: " .. d.code .. ": " .. d.long_description, why.cause)
  end)
end)

describe("cic.read of a directory", function()
  it("names its files in time linear in its path (4,000 slashes, 200 files)", function()
    -- A path cannot be 100,000 characters long: PATH_MAX is 4,096. The
    -- slashes were stripped again for each file (3.3 s for 50 files).
    local dir = process.tempdir()
    finally(function() process.cleanup(dir) end)
    for i = 1, 200 do process.write(("%s/d/%03d.xml"):format(dir, i), "<x/>") end
    local records, problems, skipped = within_bound("a///d", cic.read, dir .. ("/"):rep(4000) .. "d")
    assert.same({}, records)
    assert.same({}, problems)
    assert.equal(200, #skipped)
    assert.truthy(skipped[1]:find("/d/001.xml", 1, true))
  end)
end)

describe("a state directory that cannot be made", function()
  local place = "/tmp/kapi-linear-spec:" .. (" "):rep(LONG) .. "x"

  it("is named by the call counts in time linear in its name", function()
    local directory = limits.directory
    finally(function() limits.directory = directory end)
    limits.directory = place
    local counter = limits.counter {host = "https://linear.example", client_id = "linear"}
    counter:spend("products")
    local ok, err = within_bound("limits", pcall, counter.flush, counter)
    counter.pending, counter.pending_calls = {}, 0 -- nothing left for the flush at exit
    assert.is_false(ok)
    assert.matches("File name too long$", errors.message(err))
  end)

  it("is named by the token store in time linear in its name", function()
    local directory = store.directory
    finally(function() store.directory = directory end)
    store.directory = place
    local ok, err = within_bound("tokens", pcall, store.write, "linear", {access_token = "x"})
    assert.is_false(ok)
    assert.matches("File name too long$", errors.message(err))
  end)
end)

describe("kapi test", function()
  it("names a bad option of 100,000 spaces in time linear in it", function()
    local started = core.now()
    local r = process.kapi_run {"test", "--bogus=a" .. (" "):rep(LONG) .. "x"}
    assert.is_true(core.now() - started < BOUND, ("%.1f s"):format(core.now() - started))
    assert.equal(2, r.status)
    assert.matches("^kapi: unknown/bad option: %-%-bogus=a .*x; re%-run with %-%-help for usage%.\n", r.stderr)
  end)
end)

describe("kapi mcp", function()
  it("serves 40,000 tool calls sent at once in time linear in them", function()
    -- Each call taken from the front of a list moved all those behind it:
    -- 20,000 took 3.4 s, 40,000 would take 13.
    local lines = {}
    for i = 1, 40000 do
      lines[i] = json.encode {jsonrpc = "2.0", id = i, method = "tools/call", params = {name = "nosuch"}}
    end
    local started = core.now()
    local r = process.sh(process.quote(process.kapi) .. " mcp",
                         {stdin = table.concat(lines, "\n") .. "\n", env = process.sandbox_env()})
    assert.is_true(core.now() - started < BOUND, ("%.1f s"):format(core.now() - started))
    assert.equal(0, r.status, r.stderr)
    local answers = select(2, r.stdout:gsub("\n", ""))
    assert.equal(40000, answers)
  end)
end)
