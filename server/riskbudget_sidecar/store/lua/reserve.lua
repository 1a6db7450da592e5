-- check_and_reserve: grant the largest part of an order that keeps the symbol's and the
-- firm's worst-case exposure within their limits, and reserve it, atomically.
--
-- ARGV: order id, strategy, symbol, sign (1 buy, -1 sell), lots (> 0), lot_cents (> 0),
--       symbol_limit_cents, total_limit_cents, expires_at_ms, forget_at_ms, the caller's
--       instance id (the reservation's holder), reassert (1: a reservation granted before,
--       put back after the server lost it; 0: a new grant), adds (1: the order adds exposure),
--       dry (1: a dry run: what would be granted, with nothing written or remembered)
-- Returns {replayed, granted, symbol_limited, total_limited, symbol_value, total_value}:
-- the values are what the symbol and the total would reach if the whole order were granted.
-- Errors: RB_REUSED when the id has a grant for another request (another sidecar's is
-- another request, whatever it asked); RB_SPENT for a repeat (not a reassert) of a grant
-- whose reservation no longer holds all it granted; RB_RANGE past 2^53; RB_RESYNC <until ms> for a new
-- grant while the sidecars re-assert their books after a loss of the server's data;
-- RB_UNMARKED for a new grant to a sidecar whose marker the server does not hold (it lost
-- its data, and that sidecar has not put its book back yet); RB_STOPPED <state> <strategy> for
-- a new grant of an order that adds exposure while the book or its strategy is HALTED or
-- REDUCING (the kill switch binds every sidecar here, as it is set, whatever they have heard).
local id, strategy, symbol = ARGV[1], ARGV[2], ARGV[3]
local sign, lots, lot_cents = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local symbol_limit, total_limit = tonumber(ARGV[7]), tonumber(ARGV[8])
local expires_at, forget_at, holder, reassert = ARGV[9], ARGV[10], ARGV[11], ARGV[12] == '1'
local adds, dry = ARGV[13] == '1', ARGV[14] == '1'
local request = table.concat({strategy, symbol, ARGV[4], ARGV[5], holder}, US)

-- A server without the caller's marker lost its data, or has not heard from it since: the
-- ledger may undercount the firm until the caller (and the others) put their books back.
if not reassert and redis.call('HEXISTS', K_INSTANCES, holder) == 0 then
  return redis.error_reply('RB_UNMARKED ' .. holder)
end

-- A repeat of an order id gets the first answer and changes nothing, while its reservation
-- still holds what was granted. Once that ended or shrank (filled, released, expired), the
-- grant's room is spent: found by a tester, a sidecar that had forgotten the id (it keeps an
-- id for less long than the server keeps its grant) approved it again with nothing reserved.
local remembered = not dry and redis.call('HGET', K_GRANTS, id)
if remembered then
  local cut = string.find(remembered, US, 1, true)
  if string.sub(remembered, cut + 1) ~= request then
    return redis.error_reply('RB_REUSED order id ' .. id .. ' already has a grant for another request')
  end
  local answer = {1}
  for number in string.gmatch(string.sub(remembered, 1, cut - 1), '%S+') do
    answer[#answer + 1] = tonumber(number)
  end
  local held = reservation(id, holder)
  if not reassert and answer[2] > 0 and (held == nil or math.abs(held.lots) < answer[2]) then
    return redis.error_reply('RB_SPENT order id ' .. id .. ' was granted ' .. int(answer[2])
      .. ' lots, and its reservation has ended or shrunk since')
  end
  return answer
end

-- A trading state that lets no order add exposure refuses a new grant of one that does.
if adds and not reassert then
  for _, scope in ipairs({'', strategy}) do
    local state = redis.call('HGET', K_STATES, scope)
    if state == 'HALTED' or state == 'REDUCING' then
      return redis.error_reply('RB_STOPPED ' .. state .. ' ' .. scope)
    end
  end
end

-- Until every sidecar has put back what it holds, the ledger undercounts: no new grant.
local resync_until = tonumber(redis.call('GET', K_RESYNC))
if resync_until and not reassert and server_ms() < resync_until then
  return redis.error_reply('RB_RESYNC ' .. int(resync_until))
end

-- The worst case as a function of the lots g granted is W(g) = max(ahead + g, behind):
-- `ahead` is the position reached in the order's direction if every reservation in that
-- direction fills, `behind` the absolute position reached the other way. As reservations
-- are never negative, behind >= -ahead: while ahead + g < 0 it stays below behind, so W
-- is non-decreasing and the order raises the worst case only past g = behind - ahead.
-- Valued at no less than the sidecars' highest fresh price mark (a rally another saw: see
-- mark.lua), not at this order's own, perhaps lagging, price alone.
lot_cents = math.max(lot_cents, highest_price_mark(price_marks(symbol), server_ms()) or 0)

local net, buy, sell = exposure(symbol)
local ahead, behind
if sign > 0 then
  ahead, behind = net + buy, math.abs(net - sell)
else
  ahead, behind = sell - net, math.abs(net + buy)
end
local worst_now = math.max(ahead, behind)
local worst_full = math.max(ahead + lots, behind)

-- The symbol's contribution to the total is revalued at this order's mark.
local others = stored(K_TOTAL) - stored(K_CONTRIB, symbol)
local symbol_value = worst_full * lot_cents
local total_value = others + symbol_value
if symbol_value > MAX_SAFE then
  return out_of_range('the symbol value', symbol_value)
end
if total_value > MAX_SAFE then
  return out_of_range('the total value', total_value)
end

-- The largest worst case, in whole lots, a limit leaves room for (-1: none at all).
-- floor(a / b) exactly: fmod is exact, and so is the division of a multiple of b.
local function room(limit_cents)
  if limit_cents < 0 then
    return -1
  end
  return (limit_cents - math.fmod(limit_cents, lot_cents)) / lot_cents
end
local symbol_room, total_room = room(symbol_limit), room(total_limit - others)

-- An order may always take the worst case up to where it already is (one that does not
-- raise it always passes), and beyond that only as far as both limits leave room.
local allowed = math.max(worst_now, math.min(symbol_room, total_room))
local granted = math.min(lots, allowed - ahead)
local symbol_limited = worst_full > math.max(worst_now, symbol_room) and 1 or 0
local total_limited = worst_full > math.max(worst_now, total_room) and 1 or 0

local numbers = {granted, symbol_limited, total_limited, symbol_value, total_value}
if dry then
  return {0, unpack(numbers)}
end
local texts = {}
for i, number in ipairs(numbers) do
  texts[i] = int(number)
end
redis.call('HSET', K_GRANTS, id, table.concat(texts, ' ') .. US .. request)
redis.call('ZADD', K_FORGET, forget_at, id)

-- A zero grant reserves nothing and leaves the symbol's mark alone; a reservation put back
-- keeps the mark the server has (its caller may hold only an estimate, no live price yet).
if granted > 0 then
  store_reservation(id, strategy, symbol, sign * granted, expires_at, holder)
  add(sign > 0 and K_BUY or K_SELL, symbol, granted)
  local mark = lot_cents
  if reassert and redis.call('HEXISTS', K_MARKS, symbol) == 1 then
    mark = nil
  end
  revalue(symbol, mark)
end
return {0, granted, symbol_limited, total_limited, symbol_value, total_value}
