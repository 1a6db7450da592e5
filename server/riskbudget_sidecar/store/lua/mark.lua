-- mark: value exposed symbols at the sidecars' live prices, so that the firm's total is held to
-- its limit at the market. Each sidecar's latest mark of a symbol is kept (for
-- PRICE_MARK_FRESH_MS), and the symbol is valued at the highest fresh one: feeds differ and lag,
-- and one quoting lower must not mark down a rally another still sees, while marks fall as every
-- sidecar that saw the rally sees prices fall (or stops marking). Orders and fills are valued at
-- no less than it either. A symbol nobody holds or reserves is left alone (no mark).
--
-- ARGV: the caller's instance id, then symbol, lot_cents (> 0), symbol, lot_cents, ...
-- Returns the number of symbols revalued. Errors: RB_RANGE past 2^53 (nothing written).
local holder, now = ARGV[1], server_ms()
local changes = {}
local total = stored(K_TOTAL)
for i = 2, #ARGV, 2 do
  local symbol, mark = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', K_MARKS, symbol) == 1 then
    local marks = price_marks(symbol)
    marks[holder] = {mark, now}
    local value = highest_price_mark(marks, now)
    local worth = worst_case(exposure(symbol)) * value
    total = total - stored(K_CONTRIB, symbol) + worth
    if worth > MAX_SAFE or total > MAX_SAFE then
      return out_of_range('the value', math.max(worth, total))
    end
    changes[#changes + 1] = {symbol, marks, value}
  end
end
local revalued = 0
for _, change in ipairs(changes) do
  local symbol, marks, value = change[1], change[2], change[3]
  local records = {}
  for instance, entry in pairs(marks) do
    if now - entry[2] <= PRICE_MARK_FRESH_MS then
      records[#records + 1] = instance .. US .. int(entry[1]) .. US .. int(entry[2])
    end
  end
  redis.call('HSET', K_PRICE_MARKS, symbol, table.concat(records, RS))
  if value ~= stored(K_MARKS, symbol) then
    revalue(symbol, value)
    revalued = revalued + 1
  end
end
return revalued
