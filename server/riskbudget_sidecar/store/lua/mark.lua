-- mark: value exposed symbols at a sidecar's live prices, so that the firm's total is held to
-- its limit at the market. A mark raises a value; it lowers one only if this sidecar's own mark
-- set it: sidecars' feeds differ and lag, and one quoting lower would otherwise mark down a rally
-- another saw, while the sidecar that saw it takes it back as its prices fall. Orders, fills and
-- positions snapshots value their symbol at their sidecar's live price too. A symbol nobody
-- holds or reserves is left alone (no mark).
--
-- ARGV: the caller's instance id, then symbol, lot_cents (> 0), symbol, lot_cents, ...
-- Returns the number of symbols revalued. Errors: RB_RANGE past 2^53 (nothing written).
local holder = ARGV[1]
local marks = {}
local total = stored(K_TOTAL)
for i = 2, #ARGV, 2 do
  local symbol, mark = ARGV[i], tonumber(ARGV[i + 1])
  local stored_mark = redis.call('HGET', K_MARKS, symbol)
  if stored_mark and (mark > tonumber(stored_mark) or redis.call('HGET', K_MARKED_BY, symbol) == holder) then
    local value = worst_case(exposure(symbol)) * mark
    total = total - stored(K_CONTRIB, symbol) + value
    if value > MAX_SAFE or total > MAX_SAFE then
      return out_of_range('the value', math.max(value, total))
    end
    marks[#marks + 1] = {symbol, mark}
  end
end
for _, pair in ipairs(marks) do
  revalue(pair[1], pair[2])
  redis.call('HSET', K_MARKED_BY, pair[1], holder)
end
return #marks
