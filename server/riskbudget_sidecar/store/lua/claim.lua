-- claim_strategies: make the calling sidecar the owner of the strategies it trades, atomically,
-- unless another owns one of them, or the server counts in other lot sizes. Two sidecars
-- trading one strategy would each replace its positions on the server with their own (a
-- whole-book snapshot from one erased the other's positions in a tester's run, and the firm
-- went to twice a symbol's limit); lots of 1 added to lots of 100 took a reviewer's firm to
-- 1.74 times a limit.
--
-- KEYS: the owners hash (strategy -> instance id; '' once its owner released it as it stopped),
-- the lot sizes the server counts in (text, set by a claim), then the positions and the
-- reservations hashes (see common.lua): while both are empty nothing is counted in any lot size
-- (not the net: found by a reviewer, positions of two strategies that cancel out leave none).
-- ARGV: the caller's instance id, its lot sizes (text), then the strategies it trades (none:
-- release them all).
-- Returns {'owned', strategy, owner, ...} for the strategies another instance owns, or
-- {'lots', the server's lot sizes} (and changes nothing then), or {'claimed', strategy, ...}
-- once the caller owns exactly these (those it owned before and no longer lists are released),
-- naming those it took over as released: their positions on the server are the last owner's.
local owners, lot_key = KEYS[1], KEYS[2]
local instance, lots = ARGV[1], ARGV[2]
local wanted, taken = {}, {'owned'}
for i = 3, #ARGV do
  wanted[ARGV[i]] = true
  local owner = redis.call('HGET', owners, ARGV[i])
  if owner and owner ~= '' and owner ~= instance then
    taken[#taken + 1] = ARGV[i]
    taken[#taken + 1] = owner
  end
end
if #taken > 1 then
  return taken
end
local held = redis.call('HGETALL', owners)
local adopted = {'claimed'}
for i = 3, #ARGV do
  if redis.call('HGET', owners, ARGV[i]) == '' then
    adopted[#adopted + 1] = ARGV[i]
  end
end
-- The lot sizes may change only with nothing counted in them: no position or reservation on the
-- server, and no other sidecar owning strategies (it would go on counting in its own).
local counted_in = redis.call('GET', lot_key)
local others_own = false
for i = 2, #held, 2 do
  others_own = others_own or (held[i] ~= '' and held[i] ~= instance)
end
local book_empty = redis.call('HLEN', KEYS[3]) + redis.call('HLEN', KEYS[4]) == 0
if #ARGV > 2 and counted_in and counted_in ~= lots and (others_own or not book_empty) then
  return {'lots', counted_in}
end
for i = 1, #held, 2 do
  if held[i + 1] == instance and not wanted[held[i]] then
    redis.call('HSET', owners, held[i], '')
  end
end
for i = 3, #ARGV do
  redis.call('HSET', owners, ARGV[i], instance)
end
if #ARGV > 2 then
  redis.call('SET', lot_key, lots)
end
return adopted
