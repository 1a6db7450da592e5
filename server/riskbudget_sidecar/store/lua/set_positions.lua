-- set_positions: replace the positions of every strategy, or of one, atomically; a symbol
-- absent from the new positions is flat in the replaced scope. Reservations stay (their
-- orders are still in flight). Each symbol of the replaced or the new positions, and each
-- symbol given a mark, is revalued: at the mark given, or the highest fresh price mark if that
-- is higher (a lagging sidecar's snapshot marks no rally down), else at its stored one.
--
-- ARGV: scope ('all' or 'one'), strategy ('' for all), n, then n x (strategy, symbol, lots)
--       with distinct (strategy, symbol), then (symbol, lot_cents) pairs to the end.
-- Returns the number of non-zero positions now held in the scope.
-- Errors, with nothing written: RB_NOMARK for an exposed symbol that has no mark,
-- RB_RANGE past 2^53.
local one = ARGV[1] == 'one'
local prefix = ARGV[2] .. US
local count = tonumber(ARGV[3])

-- The change of each touched symbol's firm position: the new positions minus the replaced.
local change = {}
local function touch(symbol, delta)
  change[symbol] = (change[symbol] or 0) + delta
end

local replaced = {}
local current = redis.call('HGETALL', K_POSITIONS)
for i = 1, #current, 2 do
  local field = current[i]
  if not one or string.sub(field, 1, #prefix) == prefix then
    replaced[#replaced + 1] = field
    touch(split(field)[2], -tonumber(current[i + 1]))
  end
end

local incoming = {}
for i = 0, count - 1 do
  local strategy, symbol, lots = ARGV[4 + 3 * i], ARGV[5 + 3 * i], tonumber(ARGV[6 + 3 * i])
  touch(symbol, lots)
  if lots ~= 0 then
    incoming[#incoming + 1] = {strategy .. US .. symbol, lots}
  end
end

local marks = {}
local now_ms = server_ms()
for i = 4 + 3 * count, #ARGV, 2 do
  local symbol = ARGV[i]
  marks[symbol] = math.max(tonumber(ARGV[i + 1]), highest_price_mark(price_marks(symbol), now_ms) or 0)
  touch(symbol, 0)
end

-- Check every symbol before writing anything: a script that fails half-way keeps its writes.
local total = stored(K_TOTAL)
for symbol, delta in pairs(change) do
  local net, buy, sell = exposure(symbol)
  net = net + delta
  local worst = worst_case(net, buy, sell)
  local mark = marks[symbol] or tonumber(redis.call('HGET', K_MARKS, symbol))
  if worst > 0 and mark == nil then
    return redis.error_reply('RB_NOMARK symbol ' .. symbol .. ' would be exposed but has no mark: pass one')
  end
  if math.abs(net) > MAX_SAFE then
    return out_of_range('the position in ' .. symbol, math.abs(net))
  end
  local value = worst * (mark or 0)
  if value > MAX_SAFE then
    return out_of_range('the value of ' .. symbol, value)
  end
  total = total - stored(K_CONTRIB, symbol) + value
end
if total > MAX_SAFE then
  return out_of_range('the total value', total)
end

for _, field in ipairs(replaced) do
  redis.call('HDEL', K_POSITIONS, field)
end
for _, position in ipairs(incoming) do
  redis.call('HSET', K_POSITIONS, position[1], int(position[2]))
end
for symbol, delta in pairs(change) do
  add(K_NET, symbol, delta)
  revalue(symbol, marks[symbol])
end
return #incoming
