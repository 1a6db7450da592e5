-- apply_fill: move a strategy's position by a fill's lots and settle the given lots of the
-- order's reservation (dropping it when none are left). A fill with no reservation of the
-- caller's (none, or another sidecar's under the same order id) still moves the position. The
-- symbol is revalued at lot_cents, the caller's live price; with keep_mark (the caller has no
-- live price, and lot_cents is the fill's own), at the mark the server holds if it holds one;
-- never below the sidecars' highest fresh price mark.
--
-- ARGV: order id, strategy, symbol, sign (1 buy, -1 sell), lots (>= 0), lot_cents (> 0),
--       the caller's instance id, lots to settle (>= 0), keep_mark (1 or 0)
-- Returns {position lots, lots still reserved for the order}. Errors: RB_RANGE past 2^53.
local id, strategy, symbol = ARGV[1], ARGV[2], ARGV[3]
local sign, lots, lot_cents = tonumber(ARGV[4]), tonumber(ARGV[5]), tonumber(ARGV[6])
local to_settle = tonumber(ARGV[8])
-- The server's value stands where the caller has no live price; else no less than the
-- sidecars' highest fresh price mark (a rally another saw: see mark.lua).
local new_mark = nil
local marked = tonumber(redis.call('HGET', K_MARKS, symbol))
if marked and ARGV[9] == '1' then
  lot_cents = marked
else
  lot_cents = math.max(lot_cents, highest_price_mark(price_marks(symbol), server_ms()) or 0)
  new_mark = lot_cents
end
local key = strategy .. US .. symbol
local move = sign * lots

local held = reservation(id, ARGV[7])
local settled = 0
if held ~= nil then
  settled = math.min(to_settle, math.abs(held.lots))
end

-- Range checks first: a script that fails half-way keeps its writes.
local position = stored(K_POSITIONS, key) + move
local net, buy, sell = exposure(symbol)
net = net + move
if held ~= nil and held.symbol == symbol then
  if held.lots > 0 then buy = buy - settled else sell = sell - settled end
end
local value = worst_case(net, buy, sell) * lot_cents
local total = stored(K_TOTAL) - stored(K_CONTRIB, symbol) + value
if math.abs(position) > MAX_SAFE or math.abs(net) > MAX_SAFE then
  return out_of_range('the position', math.max(math.abs(position), math.abs(net)))
end
if value > MAX_SAFE or total > MAX_SAFE then
  return out_of_range('the value', math.max(value, total))
end

add(K_POSITIONS, key, move)
add(K_NET, symbol, move)
local remaining = 0
if held ~= nil then
  remaining = settle(id, held, settled)
  if held.symbol ~= symbol then
    revalue(held.symbol, nil)
  end
end
revalue(symbol, new_mark)
return {position, remaining}
