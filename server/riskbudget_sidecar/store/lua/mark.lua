-- mark: value exposed symbols at new prices, so that the firm's total is checked at the
-- market, not at the price of each symbol's last order or fill. A symbol nobody holds or
-- reserves is left alone (it has no mark). The last sidecar to mark a symbol sets its value.
--
-- ARGV: symbol, lot_cents (> 0), symbol, lot_cents, ...
-- Returns the number of symbols revalued. Errors: RB_RANGE past 2^53 (nothing written).
local marks = {}
local total = stored(K_TOTAL)
for i = 1, #ARGV, 2 do
  local symbol, mark = ARGV[i], tonumber(ARGV[i + 1])
  if redis.call('HEXISTS', K_MARKS, symbol) == 1 then
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
end
return #marks
