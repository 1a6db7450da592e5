-- Operator state shared by every sidecar: write or delete one field of a hash and announce
-- it on the change channel in the same step, so that no listener misses a change nor hears
-- of one that did not happen. A delete of an absent field changes nothing and is not announced.
--
-- KEYS: the hash. ARGV: channel, kind (the message), 'set' or 'delete', field, value (set).
-- Returns 1 if the field was written or deleted, else 0.
local channel, kind, action, field = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
if action == 'set' then
  redis.call('HSET', KEYS[1], field, ARGV[5])
elseif redis.call('HDEL', KEYS[1], field) == 0 then
  return 0
end
redis.call('PUBLISH', channel, kind)
return 1
