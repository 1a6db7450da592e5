-- mark: raise the value of exposed symbols to new, higher prices, so that a rally in what the
-- firm holds counts against its total. A mark never lowers a value: sidecars' feeds differ and
-- lag, and one quoting lower (or one bad print) would mark down what the others hold; a value
-- comes down with the next order, fill or positions snapshot in the symbol, at the live price
-- of the sidecar that makes it. A symbol nobody holds or reserves is left alone (no mark).
--
-- ARGV: symbol, lot_cents (> 0), symbol, lot_cents, ...
-- Returns the number of symbols revalued (raised). Errors: RB_RANGE past 2^53 (nothing written).
local marks = {}
local total = stored(K_TOTAL)
for i = 1, #ARGV, 2 do
  local symbol, mark = ARGV[i], tonumber(ARGV[i + 1])
  local stored_mark = redis.call('HGET', K_MARKS, symbol)
  if stored_mark and mark > tonumber(stored_mark) then
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
