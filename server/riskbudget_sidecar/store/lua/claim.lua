-- claim_strategies: make the calling sidecar the owner of the strategies it trades, atomically,
-- unless another owns one of them, or the server counts in other lot sizes. Two sidecars
-- trading one strategy would each replace its positions on the server with their own (a
-- whole-book snapshot from one erased the other's positions in a tester's run, and the firm
-- went to twice a symbol's limit); lots of 1 added to lots of 100 took a reviewer's firm to
-- 1.74 times a limit.
--
-- KEYS: the owners hash (strategy -> instance id), the lot sizes the server counts in (text,
-- set by the first claim; it stays while positions counted in them may: see the README).
-- ARGV: the caller's instance id, its lot sizes (text), then the strategies it trades (none:
-- release them all).
-- Returns {'owned', strategy, owner, ...} for the strategies another instance owns, or
-- {'lots', the server's lot sizes} (and changes nothing then), or {} once the caller owns
-- exactly these (those it owned before and no longer lists are released).
local owners, lot_key = KEYS[1], KEYS[2]
local instance, lots = ARGV[1], ARGV[2]
local wanted, taken = {}, {'owned'}
for i = 3, #ARGV do
  wanted[ARGV[i]] = true
  local owner = redis.call('HGET', owners, ARGV[i])
  if owner and owner ~= instance then
    taken[#taken + 1] = ARGV[i]
    taken[#taken + 1] = owner
  end
end
if #taken > 1 then
  return taken
end
local counted_in = redis.call('GET', lot_key)
if #ARGV > 2 and counted_in and counted_in ~= lots then
  return {'lots', counted_in}
end
local held = redis.call('HGETALL', owners)
for i = 1, #held, 2 do
  if held[i + 1] == instance and not wanted[held[i]] then
    redis.call('HDEL', owners, held[i])
  end
end
for i = 3, #ARGV do
  redis.call('HSET', owners, ARGV[i], instance)
end
if #ARGV > 2 then
  redis.call('SET', lot_key, lots)
end
return {}
