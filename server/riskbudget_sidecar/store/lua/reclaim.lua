-- reclaim_expired: free the reservations that expired, and forget the grants whose time has
-- come. Any sidecar may run it, as often as it likes: a second run finds nothing left to do.
-- At most `limit` of each per run keeps the server responsive.
--
-- Whose clock: the caller's decides for what the caller holds (its own book expires those by
-- it); what another sidecar holds is due only once the server's clock, less the lag allowed
-- a holder's clock, is past it too: past it by the holder's clock, and never early by the
-- clock of a caller that runs ahead. (Those it skips for now are due by the server's clock
-- within the caller's lead.)
--
-- ARGV: now_ms (the caller's clock), limit, the caller's instance id, the lag allowed (ms).
-- Returns the ids of the reservations freed.
local now, limit, caller, lag = ARGV[1], ARGV[2], ARGV[3], tonumber(ARGV[4])
local server_now = server_ms()
local others_now = math.min(tonumber(now), server_now - lag)

local function due(at, holder)
  return tonumber(at) <= (holder == caller and tonumber(now) or others_now)
end

-- Another sidecar's reservation not yet due is skipped, not counted against `limit`: the page
-- moves past the skipped ones only (a freed one leaves the set), so they cannot crowd out
-- the caller's own that are due. An id with no reservation (evicted, deleted by hand) is
-- dropped from the set.
local freed, skipped = {}, 0
while #freed < tonumber(limit) do
  local page = redis.call('ZRANGEBYSCORE', K_EXPIRIES, '-inf', now, 'LIMIT', skipped, limit - #freed)
  if #page == 0 then
    break
  end
  for _, id in ipairs(page) do
    local held = reservation(id)
    if held == nil then
      redis.call('ZREM', K_EXPIRIES, id)
    elseif due(held.expires_at, held.holder) then
      release(id)
      freed[#freed + 1] = id
    else
      skipped = skipped + 1
    end
  end
end

-- A grant is forgotten only after its reservation expired; should that reservation still
-- be held (more than `limit` expired at once), free it first, or a repeat of the order id
-- would reserve a second time. The grant's holder is the last field of its request.
local forgotten = redis.call('ZRANGEBYSCORE', K_FORGET, '-inf', now, 'WITHSCORES', 'LIMIT', 0, limit)
for i = 1, #forgotten, 2 do
  local id = forgotten[i]
  local grant = redis.call('HGET', K_GRANTS, id)
  local holder = grant and string.match(grant, '[^' .. US .. ']*$') or ''
  if due(forgotten[i + 1], holder) then
    if release(id) then
      freed[#freed + 1] = id
    end
    redis.call('HDEL', K_GRANTS, id)
    redis.call('ZREM', K_FORGET, id)
  end
end
return freed
