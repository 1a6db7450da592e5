-- reclaim_expired: free the reservations that expired at or before now, and forget the
-- grants whose time has come. Any sidecar may run it, as often as it likes: a second run
-- finds nothing left to do. At most `limit` of each per run keeps the server responsive.
--
-- ARGV: now_ms, limit. Returns the ids of the reservations freed.
local now, limit = ARGV[1], ARGV[2]

local freed = redis.call('ZRANGEBYSCORE', K_EXPIRIES, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(freed) do
  release(id)
end

-- A grant is forgotten only after its reservation expired; should that reservation still
-- be held (more than `limit` expired at once), free it first, or a repeat of the order id
-- would reserve a second time.
local forgotten = redis.call('ZRANGEBYSCORE', K_FORGET, '-inf', now, 'LIMIT', 0, limit)
for _, id in ipairs(forgotten) do
  if release(id) then
    freed[#freed + 1] = id
  end
  redis.call('HDEL', K_GRANTS, id)
  redis.call('ZREM', K_FORGET, id)
end
return freed
