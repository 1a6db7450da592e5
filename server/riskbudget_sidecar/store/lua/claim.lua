-- claim_strategies: make the calling sidecar the owner of the strategies it trades, atomically,
-- unless another owns one of them. Two sidecars trading one strategy would each replace its
-- positions on the server with their own (a whole-book snapshot from one erased the other's
-- positions in a tester's run, and the firm went to twice a symbol's limit).
--
-- KEYS: the owners hash (strategy -> instance id).
-- ARGV: the caller's instance id, then the strategies it trades (none: release them all).
-- Returns {strategy, owner, ...} for those another instance owns (and changes nothing), or {}
-- once the caller owns exactly these (those it owned before and no longer lists are released).
local owners, instance = KEYS[1], ARGV[1]
local wanted, taken = {}, {}
for i = 2, #ARGV do
  wanted[ARGV[i]] = true
  local owner = redis.call('HGET', owners, ARGV[i])
  if owner and owner ~= instance then
    taken[#taken + 1] = ARGV[i]
    taken[#taken + 1] = owner
  end
end
if #taken > 0 then
  return taken
end
local held = redis.call('HGETALL', owners)
for i = 1, #held, 2 do
  if held[i + 1] == instance and not wanted[held[i]] then
    redis.call('HDEL', owners, held[i])
  end
end
for i = 2, #ARGV do
  redis.call('HSET', owners, ARGV[i], instance)
end
return {}
