-- A fixed-window rate limiter: at most ARGV[1] calls per ARGV[2] seconds for the key KEYS[1].
-- Replies 1 when this call is allowed and 0 once the limit is reached.
--
--   redis-cli --eval examples/ratelimit.lua rate:alice , 10 60
local count = redis.call('INCR', KEYS[1])
if count == 1 then
  -- The first call of a window starts its clock.
  redis.call('EXPIRE', KEYS[1], ARGV[2])
end
if count > tonumber(ARGV[1]) then
  return 0
end
return 1
