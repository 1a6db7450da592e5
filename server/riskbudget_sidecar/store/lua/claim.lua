-- claim_strategies: make the calling sidecar the owner of the strategies it trades, atomically,
-- unless another owns one of them, or another owning any strategy counts in other lot sizes.
-- Two sidecars trading one strategy would each replace its positions on the server with their
-- own (a whole-book snapshot from one erased the other's positions in a tester's run, and the
-- firm went to twice a symbol's limit); two counting a symbol in lots of other sizes add up
-- lots of 1 and lots of 100 (a reviewer's firm went to 1.74 times a symbol's limit).
--
-- KEYS: the owners hash (strategy -> instance id), the owners' lot sizes (instance id -> text).
-- ARGV: the caller's instance id, its lot sizes (text), then the strategies it trades (none:
-- release them all).
-- Returns {'owned', strategy, owner, ...} for the strategies another instance owns, or
-- {'lots', owner, its lot sizes} for an owner whose lot sizes differ (and changes nothing
-- then), or {} once the caller owns exactly these (those it owned before and no longer lists
-- are released).
local owners, owner_lots = KEYS[1], KEYS[2]
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
local held = redis.call('HGETALL', owners)
if #ARGV > 2 then
  for i = 2, #held, 2 do
    local theirs = redis.call('HGET', owner_lots, held[i])
    if held[i] ~= instance and theirs and theirs ~= lots then
      return {'lots', held[i], theirs}
    end
  end
end
for i = 1, #held, 2 do
  if held[i + 1] == instance and not wanted[held[i]] then
    redis.call('HDEL', owners, held[i])
  end
end
for i = 3, #ARGV do
  redis.call('HSET', owners, ARGV[i], instance)
end
if #ARGV > 2 then
  redis.call('HSET', owner_lots, instance, lots)
else
  redis.call('HDEL', owner_lots, instance)
end
return {}
