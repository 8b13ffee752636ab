-- Pagination: one iterator over the styles kapi meets. Pages arrive in
-- order, without gaps or duplicates; the next page is already being
-- fetched while the caller works on the current one, and when the total
-- is known the remaining pages are fetched concurrently (bounded). An
-- error on a later page raises, saying how far the iteration got.
local task = require "kapi.task"
local errors = require "kapi.errors"
local json = require "kapi.json"
local doc = require "kapi.doc"

local M = {}

-- The iterator object: `for item in it do`, it:all(), it.count.
local Iterator = {}
Iterator.__index = Iterator
Iterator.__call = function(self) return self:next() end

local function failure(err, delivered, page)
  if errors.is(err) and (err.setup or err.fatal or errors.is(err, "interrupted")) then return err end -- not about a page
  local message = ("%s (after %d items, on page %d)"):format(errors.message(err), delivered, page)
  if errors.is(err) then
    local copy = {}
    for k, v in pairs(err) do copy[k] = v end
    copy.message, copy.delivered, copy.page = message, delivered, page
    return setmetatable(copy, getmetatable(err))
  end
  return errors.new("pagination", message, {cause = err, delivered = delivered, page = page})
end

--- The next item, or nil at the end. With opts.unique, an item whose key
--- came before in this iteration is passed over: a search whose order
--- changes between pages (Kroger's fuzzy term search) can repeat items
--- across offset pages.
function Iterator:next()
  while true do
    if self.max_items and self.count >= self.max_items then return self:finish() end
    local items = self.items
    if items and self.position < #items then
      self.position = self.position + 1
      local item = items[self.position]
      local key = self.unique and self.unique(item)
      if key == nil or not self.seen[key] then
        if key ~= nil then self.seen[key] = true end
        self.count = self.count + 1
        return item
      end
      self.repeated = self.repeated + 1
    else
      if self.done then return nil end
      self:advance()
    end
  end
end

function Iterator:finish()
  self.done = true
  self.items = nil
  self:cancel()
  return nil
end

--- Every remaining item, in a list.
function Iterator:all()
  local out = {}
  for item in self do out[#out + 1] = item end
  return out
end

--- Stops fetching (the iterator is left early).
function Iterator:cancel()
  for _, t in pairs(self.pending or {}) do t:cancel() end
  self.pending = {}
end

Iterator.__close = Iterator.cancel

-- The options every style takes, checked before anything is fetched.
local function check_options(style, opts)
  errors.check(opts, "table", "paginate." .. style .. ": opts")
  errors.check(opts.fetch, "function", "paginate." .. style .. ": fetch")
  for _, name in ipairs {"limit", "max_items", "max_pages", "max_offset", "concurrency"} do
    local n = opts[name]
    if n ~= nil and (math.type(n) ~= "integer" or n < 0) then
      errors.usage(("paginate.%s: %s must be a whole number, got %s"):format(style, name, errors.excerpt(n)), 3)
    end
  end
  errors.check(opts.progress, "function?", "paginate." .. style .. ": progress")
  errors.check(opts.unique, "function?", "paginate." .. style .. ": unique")
end

-- A page as fetch gave it: fetch is the caller's function, and a page of
-- the wrong shape is the caller's mistake, said as such with what came
-- back (a usage error), never a Lua error from inside the iterator. A
-- total of null is no total.
local function checked_page(style, items, total)
  if items ~= nil and type(items) ~= "table" then
    errors.usage(("paginate.%s: fetch returned %s as the page's items, expected a table (or nil)")
                 :format(style, errors.shown(items)), 0)
  end
  if total == json.null then total = nil end
  if total ~= nil and (type(total) ~= "number" or not (total >= 0)) then
    errors.usage(("paginate.%s: fetch returned %s as the total, expected a number of items (or nil)")
                 :format(style, errors.shown(total)), 0)
  end
  return items or {}, total
end

local function new_iterator(opts)
  return setmetatable({count = 0, position = 0, pages = 0, max_items = opts.max_items, repeated = 0,
                       max_pages = opts.max_pages, progress = opts.progress, pending = {},
                       unique = opts.unique, seen = {}}, Iterator)
end

local function report(self)
  if self.progress then self.progress(self.count + #(self.items or {}) - self.position, self.total) end
end

-- Offset and page-number pagination ----------------------------------------------

-- Pages are numbered from 1; fetch(n) gives the items of page n and, when
-- known, the total number of items. Pages of `limit` items: no page is
-- asked for beyond what max_items needs.
local function numbered(opts, fetch_page, page_count, limit)
  local self = new_iterator(opts)
  local window = opts.concurrency or 4
  local prefetch = opts.prefetch ~= false
  -- Fetching ahead stops at the page max_items needs if pages are full;
  -- a page the iteration needs (needed: pages came short, or repeated
  -- items) is fetched all the same.
  local function spawn(n, needed)
    if self.pending[n] or (self.last_page and n > self.last_page) then return end
    if self.max_pages and n > self.max_pages then return end
    if not needed and self.max_items and limit and (n - 1) * limit >= self.max_items + self.repeated then return end
    self.pending[n] = task.spawn(fetch_page, n)
  end
  function self.advance()
    local n = self.pages + 1
    if (self.last_page and n > self.last_page) or (self.max_pages and n > self.max_pages) then
      self.done = true
      return
    end
    -- A page not fetched ahead is fetched in the caller's task: in a task
    -- of its own, its answer would wake that task, and the caller only
    -- after every task woken before it (in a fan-out, the other answers
    -- being decoded), so the caller's next request would wait for them.
    local t = self.pending[n]
    local ok, items, total
    if t then
      ok, items, total = pcall(t.wait, t)
    else
      ok, items, total = pcall(fetch_page, n)
    end
    self.pending[n] = nil
    if not ok then
      self:cancel()
      self.done = true
      error(failure(items, self.count, n), 0)
    end
    self.pages = n
    self.items, self.position = items, 0
    if total and not self.total then
      self.total = total
      self.last_page = page_count(total)
    end
    if #items == 0 then self.done = true end
    report(self)
    if prefetch and not self.done then
      -- The next page now; with the total known, a window of them.
      local ahead = self.total and window or 1
      for k = n + 1, n + ahead do spawn(k) end
    end
  end
  return self
end

--- Offset pagination (Kroger's filter.start/filter.limit):
--- offset{fetch = function(start, limit) return items, total end, limit = 50,
--- max_offset = 250, max_items, max_pages, progress, prefetch = true,
--- concurrency = 4, on_unreachable = function(n) ... end}
function M.offset(opts)
  check_options("offset", opts)
  -- A page no larger than what is wanted: max_items = 3 asks for 3, not 50.
  local limit = math.max(1, math.min(opts.limit or 50, opts.max_items or math.huge))
  local max_offset = opts.max_offset
  local warned = false
  local self
  local function reachable(total)
    local cap = max_offset and max_offset + limit
    if cap and total > cap then
      -- Said once, and only when the results wanted run past the cap.
      if not warned and (not opts.max_items or opts.max_items > cap) then
        warned = true
        local hidden = total - cap
        if opts.on_unreachable then opts.on_unreachable(hidden, total)
        else require("kapi.log").note("kapi: %d of %d results cannot be reached (the API stops at offset %d); "
                                      .. "narrow the search", hidden, total, max_offset) end
      end
      return cap
    end
    return total
  end
  local function fetch_page(n)
    local start = (n - 1) * limit
    if max_offset and start > max_offset then return {}, nil end
    return checked_page("offset", opts.fetch(start, limit))
  end
  self = numbered(opts, fetch_page, function(total)
    return math.max(1, (reachable(total) + limit - 1) // limit)
  end, limit)
  -- The iterator is also the generic for's closing value: leaving the loop
  -- early (break, error) stops the pages being fetched ahead.
  return self, nil, nil, self
end

--- Page-number pagination: pages{fetch = function(n) return items, total_items end, limit, ...}
function M.pages(opts)
  check_options("pages", opts)
  local limit = opts.limit or 50
  local function fetch_page(n) return checked_page("pages", opts.fetch(n)) end
  local self = numbered(opts, fetch_page, function(total) return math.max(1, (total + limit - 1) // limit) end, limit)
  return self, nil, nil, self
end

-- Cursor and link pagination ------------------------------------------------------

--- The most pages a cursor loop fetches unless told otherwise: a service
--- that kept sending cursors would otherwise be asked forever.
M.MAX_CURSOR_PAGES = 100000

-- A cursor as comparable text; nil for none (nil, null, "", an empty array).
local function cursor_key(cursor)
  if cursor == nil or cursor == json.null or cursor == "" then return nil end
  if type(cursor) == "table" then
    if next(cursor) == nil then return nil end
    return json.encode(cursor, {sorted = true})
  end
  return tostring(cursor)
end

-- A cursor page as fetch gave it, checked as checked_page does.
local function checked_cursor_page(style, items, cursor, total)
  items, total = checked_page(style, items, total)
  return items, cursor, total
end

local function convert_all(convert, items)
  for i = 1, #items do items[i] = convert(items[i]) end
end

-- A page whose items are made later: n of them, by make().
local Later = {}

--- A cursor page of n items that make() gives, made once the next page's
--- request has gone: fetch may return it where it returns the items, when
--- the cursor and the count can be read first (json.skim) and making the
--- items (decoding them) takes longer.
function M.later(n, make)
  errors.check_whole(n, 0, nil, "paginate.later: n")
  errors.check(make, "function", "paginate.later: make")
  return setmetatable({n = n, make = make}, Later)
end

-- The items of a later page, made; a count that differs from what was
-- said is the fetch's fault, named.
local function made(page)
  local items = page.make()
  if type(items) ~= "table" or #items ~= page.n then
    errors.usage(("paginate.later: make() gave %s, expected a list of the %d items said"):format(
      type(items) == "table" and (#items .. " items") or errors.shown(items), page.n), 0)
  end
  return items
end

--- Cursor pagination (Content1's searchAfter): cursor{fetch = function(cursor)
--- return items, next_cursor, total end, ...}: the first call gets nil; no
--- next cursor (nil, "", []), an empty page, or the total reached ends it
--- (no request for the empty page after the last). The next page is
--- fetched while the caller works on the current one, unless max_items is
--- already reached; convert(item), when given, makes each item of a page
--- what the caller gets, once the next page's request has gone (a page of
--- 1,000 made into items would otherwise hold it back). A cursor the
--- service repeats, or none while its total says more items remain, is an
--- error naming the page, never a loop; max_pages (default
--- M.MAX_CURSOR_PAGES) bounds every loop.
local function cursor(style, opts)
  local self = new_iterator(opts)
  local guarded = self.max_pages == nil -- a limit asked for stops quietly; the guard says why it stopped
  self.max_pages = self.max_pages or M.MAX_CURSOR_PAGES
  local prefetch = opts.prefetch ~= false
  local function fetch(c) return checked_cursor_page(style, opts.fetch(c)) end
  local function start(c)
    return task.spawn(fetch, c)
  end
  local next_task, seen = nil, {}
  if self.max_items ~= 0 then next_task = start(nil) end
  self.pending[1] = next_task
  -- The page that came is still handed out; asking for the next one
  -- raises why (nothing already fetched is lost).
  local stop
  local function broken(_, why)
    stop = {wait = function() error(errors.new("pagination", why), 0) end}
  end
  function self.advance()
    local n = self.pages + 1
    if not next_task then
      self.done = true
      return
    end
    local ok, items, cursor, total = pcall(next_task.wait, next_task)
    self.pending = {}
    if not ok then
      self.done = true
      error(failure(items, self.count, n), 0)
    end
    self.pages = n
    local later = getmetatable(items) == Later and items
    local size = later and later.n or #items
    self.items, self.position = items, 0
    self.total = total or self.total
    next_task = nil
    local delivered = self.count + size
    local wanted = not (self.max_items and delivered >= self.max_items)
    local key = cursor_key(cursor)
    if size > 0 and wanted then
      local more = self.total and delivered < self.total
      if key and seen[key] then
        broken(n, "the service sent the searchAfter of an earlier page again; stopped rather than fetch it forever")
      elseif not key and more then
        broken(n, ("the service sent no searchAfter, but counts %d items and %d have come"):format(self.total, delivered))
      elseif key and n >= self.max_pages and guarded then
        broken(n, ("stopped after %d pages with more to come; narrow the search, or give max_pages"):format(n))
      end
    end
    if key then seen[key] = true end
    -- A service that counts its items has no page after the one that
    -- brings the last of them: asking would cost a round trip for an empty
    -- answer (Content1's 204), a third of preflight --gln over a real link.
    local all_came = self.total and delivered >= self.total
    if key and size > 0 and wanted and not all_came and n < self.max_pages and not stop then
      if prefetch then
        next_task = start(cursor)
        self.pending[1] = next_task
        -- Its request goes now, before the caller has this page: a task
        -- starts only when the running one waits, and a caller working
        -- through the page (checking 1,000 items) would otherwise send it
        -- only once done. (Offset pages keep theirs until the caller
        -- waits: a loop left early then cancels a window never sent.)
        task.sleep(0)
      else
        local c = cursor
        next_task = {wait = function() return fetch(c) end}
      end
    end
    if stop then next_task, stop = stop, nil end
    if later then
      local ok_made, list = pcall(made, later)
      if not ok_made then
        self.done = true
        error(failure(list, self.count, n), 0)
      end
      self.items = list
    end
    if opts.convert then
      local converted, err = pcall(convert_all, opts.convert, self.items)
      if not converted then
        self.done = true
        error(failure(err, self.count, n), 0)
      end
    end
    if #self.items == 0 then self.done = true end
    report(self)
  end
  return self, nil, nil, self
end

function M.cursor(opts)
  check_options("cursor", opts)
  errors.check(opts.convert, "function?", "paginate.cursor: convert") -- the other styles take none
  return cursor("cursor", opts)
end

-- A kapi.http response, or anything with headers:all(name).
local function check_response(response)
  local headers = type(response) == "table" and response.headers or nil
  local what
  if response ~= nil and type(response) ~= "table" then
    what = errors.shown(response)
  elseif headers ~= nil and (type(headers) ~= "table" or type(headers.all) ~= "function") then
    what = "a table whose headers have no :all(name)"
  end
  if what then
    errors.usage(("paginate.link: fetch returned %s as the response, expected a kapi.http response (or nil)")
                 :format(what), 0)
  end
end

-- The <target> and the parameters after it (up to a comma) of each link
-- in a Link header's value, as value:gmatch("<([^>]+)>([^,]*)") gives
-- them, found with plain searches from where the last one ended: that
-- pattern ran to the end of the value from each "<" with no ">" after it
-- (10,000 "<" took 1 s).
local function links_of(value)
  local out, at = {}, 1
  while true do
    local open = value:find("<", at, true)
    local close = open and value:find(">", open + 1, true)
    if not close then return out end -- and no later "<" has a ">" after it either
    if close == open + 1 then -- "<>" has no target: look again from the ">"
      at = close
    else
      local stop = value:find(",", close + 1, true) or #value + 1
      out[#out + 1] = {value:sub(open + 1, close - 1), value:sub(close + 1, stop - 1)}
      at = stop
    end
  end
end

--- Link pagination (a `Link: <url>; rel="next"` header): link{fetch =
--- function(url) return items, response end, url = first}.
function M.link(opts)
  check_options("link", opts)
  errors.check(opts.url, "string", "paginate.link: url")
  return cursor("link", {
    max_items = opts.max_items, max_pages = opts.max_pages, progress = opts.progress, prefetch = opts.prefetch,
    fetch = function(url)
      local items, response = opts.fetch(url or opts.url)
      check_response(response)
      local next_url
      for _, value in ipairs(response and response.headers and response.headers:all("link") or {}) do
        for _, link in ipairs(links_of(value)) do
          if link[2]:match('rel="?next"?') then next_url = link[1] end
        end
      end
      return items, next_url
    end,
  })
end

doc.declare("kapi.paginate.offset", M.offset, [[
kapi.paginate.offset{fetch = function(start, limit) return items, total end, limit = 50, ...} -> iterator
Offset pagination. The next page is fetched while you work on the current
one; once the total is known, up to `concurrency` pages (4) are fetched at
once and still delivered in order. Options: max_items, max_pages,
max_offset (the endpoint's limit: beyond it, says once how many results are
not reachable), progress(done, total), prefetch = false.
Example:
  for p in kapi.paginate.offset{limit = 50, max_offset = 250, fetch = function(start, limit)
    local page = kapi.http.get(url, {query = {["filter.start"] = start, ["filter.limit"] = limit}}):json()
    return page.data, page.meta.pagination.total
  end} do print(p.description) end]])

doc.declare("kapi.paginate.cursor", M.cursor, [[
kapi.paginate.cursor{fetch = function(cursor) return items, next_cursor, total end, ...} -> iterator
Cursor pagination (Content1's searchAfter): the first fetch gets nil; a nil
cursor, an empty page or the total reached ends it; the next page is
fetched ahead. convert(item), when given, makes each item of a page what
the loop gets, once the next page's request has gone. fetch may return
kapi.paginate.later(n, make) as the items: a page of n items that make()
gives, also once the next page's request has gone (read the cursor with
response:skim, decode the items later).]])

doc.declare("kapi.paginate.pages", M.pages, [[
kapi.paginate.pages{fetch = function(n) return items, total end, limit, ...} -> iterator
Page-number pagination, pages numbered from 1.]])

doc.declare("kapi.paginate.link", M.link, [[
kapi.paginate.link{url = first, fetch = function(url) return items, response end} -> iterator
Follows `Link: <...>; rel="next"` headers.]])

return M
