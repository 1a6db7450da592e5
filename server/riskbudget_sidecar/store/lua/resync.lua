-- begin_resync: a sidecar found that the server lost its data (its marker is gone). Until
-- every sidecar has re-asserted its book, the ledger undercounts what the firm holds, so
-- new grants are refused (reserve.lua) for `window_ms` of the server's clock. The first
-- sidecar to find the loss opens the window; one finding it later leaves it as it is (the
-- key outlives the window: it goes only with the rest of the data).
--
-- ARGV: window_ms. Returns {the server ms until which new grants are refused, the server's now}.
local now = server_ms()
redis.call('SET', K_RESYNC, int(now + tonumber(ARGV[1])), 'NX')
return {tonumber(redis.call('GET', K_RESYNC)), now}
