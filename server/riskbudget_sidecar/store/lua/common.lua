-- Shared by the book scripts: redis_ledger.py puts this in front of each of them.
--
-- Units: quantities are whole lots, values whole cents. Lua numbers are doubles, exact
-- for integers below 2^53; every script refuses (before writing anything) a change that
-- would take a stored value past that, and writes numbers back with %d, never as floats.
--
-- KEYS, in this order, all under one hash tag so that they share a cluster slot:
local K_POSITIONS,    -- hash "strategy<US>symbol" -> position lots (non-zero only)
      K_NET,          -- hash symbol -> position lots summed over all strategies
      K_BUY,          -- hash symbol -> reserved buy lots over all strategies
      K_SELL,         -- hash symbol -> reserved sell lots over all strategies
      K_MARKS,        -- hash symbol -> lot_cents of the symbol's last change
      K_CONTRIB,      -- hash symbol -> worst-case lots x mark: its share of the total
      K_TOTAL,        -- string: the firm's worst-case gross, the sum of K_CONTRIB
      K_RESERVATIONS, -- hash order id -> "strategy<US>symbol<US>signed lots<US>expires_at_ms<US>holder"
      K_EXPIRIES,     -- zset order id by expires_at_ms
      K_GRANTS,       -- hash order id -> "<grant numbers><US><request>", see reserve.lua
      K_FORGET,       -- zset order id by the time its grant is forgotten
      K_RESYNC,       -- string: server ms until which new grants are refused, see resync.lua
      K_INSTANCES,    -- hash instance id -> 1: the sidecars whose books the server holds
      K_STATES,       -- hash strategy ('' for the book) -> trading state name, see announce.lua
      K_PRICE_MARKS   -- hash symbol -> each sidecar's latest price mark, see price_marks below
    = unpack(KEYS)
-- A symbol is "exposed" while it has a position or a reservation; only exposed symbols
-- have fields in K_NET/K_BUY/K_SELL (non-zero ones), K_MARKS and K_CONTRIB.
-- A reservation's holder is the instance id of the sidecar that reserved it: only that
-- sidecar releases or settles it (another may reuse the order id for an order of its own).

local US = '\31' -- ASCII unit separator; the ledger refuses names that contain it
local MAX_SAFE = 9007199254740991 -- 2^53 - 1

local function int(n)
  return string.format('%d', n)
end

-- A stored integer, 0 when absent (HGET and GET reply false for a missing value).
local function stored(key, field)
  if field == nil then
    return tonumber(redis.call('GET', key)) or 0
  end
  return tonumber(redis.call('HGET', key, field)) or 0
end

local function split(text)
  local parts, start = {}, 1
  while true do
    local cut = string.find(text, US, start, true)
    if cut == nil then
      parts[#parts + 1] = string.sub(text, start)
      return parts
    end
    parts[#parts + 1] = string.sub(text, start, cut - 1)
    start = cut + 1
  end
end

-- The server's clock (TIME), in ms.
local function server_ms()
  local time = redis.call('TIME')
  return tonumber(time[1]) * 1000 + math.floor(tonumber(time[2]) / 1000)
end

local function out_of_range(what, value)
  return redis.error_reply('RB_RANGE ' .. what .. ' would be ' .. int(value)
    .. ', beyond the 2^53 the ledger counts exactly')
end

-- Add delta to an integer hash field, dropping the field when it reaches 0.
local function add(key, field, delta)
  if delta ~= 0 and redis.call('HINCRBY', key, field, int(delta)) == 0 then
    redis.call('HDEL', key, field)
  end
end

local function exposure(symbol)
  return stored(K_NET, symbol), stored(K_BUY, symbol), stored(K_SELL, symbol)
end

-- The largest absolute position the symbol reaches if every reservation of one
-- direction fills (and none of the other).
local function worst_case(net, buy, sell)
  return math.max(math.abs(net + buy), math.abs(net - sell))
end

-- Value the symbol's worst case at `mark` (at its stored mark when nil) and move the
-- total by the change of its contribution. Callers check the range beforehand.
local function revalue(symbol, mark)
  local worst = worst_case(exposure(symbol))
  local before = stored(K_CONTRIB, symbol)
  local after = 0
  if worst == 0 then
    redis.call('HDEL', K_PRICE_MARKS, symbol)
    redis.call('HDEL', K_CONTRIB, symbol)
    redis.call('HDEL', K_MARKS, symbol)
  else
    mark = mark or stored(K_MARKS, symbol)
    after = worst * mark
    redis.call('HSET', K_CONTRIB, symbol, int(after))
    redis.call('HSET', K_MARKS, symbol, int(mark))
  end
  if after ~= before and redis.call('INCRBY', K_TOTAL, int(after - before)) == 0 then
    redis.call('DEL', K_TOTAL)
  end
end

-- Each sidecar's latest price mark of a symbol (mark.lua): "instance<US>lot_cents<US>server ms"
-- records, separated by RS. A sidecar's mark counts for PRICE_MARK_FRESH_MS: one that stops
-- publishing (stopped, or its feed lost the symbol) no longer holds the value up after that.
local RS = '\30'
local PRICE_MARK_FRESH_MS = 60000

local function price_marks(symbol)
  local marks = {}
  local text = redis.call('HGET', K_PRICE_MARKS, symbol)
  if text then
    for record in string.gmatch(text, '[^' .. RS .. ']+') do
      local instance, cents, ms = string.match(record, '^(.*)' .. US .. '(%d+)' .. US .. '(%d+)$')
      marks[instance] = {tonumber(cents), tonumber(ms)}
    end
  end
  return marks
end

-- The highest of the fresh price marks of a symbol, or nil if none is fresh.
local function highest_price_mark(marks, now_ms)
  local highest = nil
  for _, mark in pairs(marks) do
    if now_ms - mark[2] <= PRICE_MARK_FRESH_MS and (highest == nil or mark[1] > highest) then
      highest = mark[1]
    end
  end
  return highest
end

-- An order's reservation, or nil; with `holder`, nil unless that sidecar holds it. One
-- written before reservations named their holder (four fields) is anyone's, as it was then.
local function reservation(id, holder)
  local text = redis.call('HGET', K_RESERVATIONS, id)
  if not text then
    return nil
  end
  local parts = split(text)
  parts[5] = parts[5] or ''
  if holder ~= nil and parts[5] ~= '' and parts[5] ~= holder then
    return nil
  end
  return {strategy = parts[1], symbol = parts[2], lots = tonumber(parts[3]), expires_at = parts[4],
          holder = parts[5]}
end

local function store_reservation(id, strategy, symbol, signed_lots, expires_at, holder)
  redis.call('HSET', K_RESERVATIONS, id,
    table.concat({strategy, symbol, int(signed_lots), expires_at, holder}, US))
  redis.call('ZADD', K_EXPIRIES, expires_at, id)
end

-- Take `lots` (unsigned) off a reservation's pending total; drop the reservation at 0.
local function settle(id, held, lots)
  add(held.lots > 0 and K_BUY or K_SELL, held.symbol, -lots)
  local remaining = math.abs(held.lots) - lots
  if remaining == 0 then
    redis.call('HDEL', K_RESERVATIONS, id)
    redis.call('ZREM', K_EXPIRIES, id)
  else
    local sign = held.lots > 0 and 1 or -1
    store_reservation(id, held.strategy, held.symbol, sign * remaining, held.expires_at, held.holder)
  end
  return remaining
end

-- Free an order's reservation (with `holder`, only if that sidecar holds it); false if none was.
local function release(id, holder)
  local held = reservation(id, holder)
  if held == nil then
    return false
  end
  settle(id, held, math.abs(held.lots))
  revalue(held.symbol, nil)
  return true
end

-- ---------------------------------------------------------------------------------------
