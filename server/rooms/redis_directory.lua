-- The match directory in Redis: every operation of RedisDirectory, run atomically (see redis_directory.py).
--
-- ARGV: prefix, op, now, tombstone_s, gc_s, then the op's arguments. Key names are built here from the
-- prefix (one Redis server, not Redis Cluster). Every op first sweeps what is due at `now` (dead nodes
-- with their matches, lapsed seats, forgotten tombstones), in time order, so nothing expired is ever
-- seen. Numbers the caller computed (expiries, creation times) are stored as the strings it sent;
-- replies carry strings, never Lua numbers (Redis would truncate them to integers).

local P, op, now, TOMB, GC = ARGV[1], ARGV[2], tonumber(ARGV[3]), tonumber(ARGV[4]), ARGV[5]
local NODES, DUE, ALL = P .. 'nodes', P .. 'seats:due', P .. 'idx:all'
local LAPSED_SEATS, LAPSED_NODES, LAPSED_MATCHES = P .. 'lapsed:seats', P .. 'lapsed:nodes', P .. 'lapsed:matches'

local function node_key(id) return P .. 'node:' .. id end
local function node_matches_key(id) return P .. 'nodematches:' .. id end
local function mail_key(id) return P .. 'mail:' .. id end
local function match_key(id) return P .. 'match:' .. id end
local function match_seats_key(id) return P .. 'matchseats:' .. id end
local function seat_key(token) return P .. 'seat:' .. token end

local function drop_match(id)
  local mk = match_key(id)
  local m = redis.call('HMGET', mk, 'node', 'indexes')
  if not m[1] then return false end
  redis.call('DEL', mk)
  for _, k in ipairs(cjson.decode(m[2])) do redis.call('ZREM', P .. k, id) end
  redis.call('ZREM', node_matches_key(m[1]), id)
  local sk = match_seats_key(id)
  for _, token in ipairs(redis.call('SMEMBERS', sk)) do
    redis.call('DEL', seat_key(token))
    redis.call('ZREM', DUE, token)
  end
  redis.call('DEL', sk)
  return true
end

-- A node's matches come out sorted by id: the per-node index is a sorted set of equal scores (byte order).
local function drop_node(id)
  local gone = redis.call('ZRANGE', node_matches_key(id), 0, -1)
  for _, mid in ipairs(gone) do drop_match(mid) end
  redis.call('DEL', node_matches_key(id), node_key(id), mail_key(id))
  redis.call('ZREM', NODES, id)
  return gone
end

local function seat_due(token)
  local sk = seat_key(token)
  local s = redis.call('HMGET', sk, 'state', 'match', 'expires')
  if s[1] == 'held' then  -- not taken in time: its place is free again; the token is a tombstone
    local mk = match_key(s[2])
    if redis.call('EXISTS', mk) == 1 then redis.call('HINCRBY', mk, 'reserved', -1) end
    redis.call('INCR', LAPSED_SEATS)
    redis.call('EXPIRE', LAPSED_SEATS, GC)
    redis.call('HSET', sk, 'state', 'lapsed')
    redis.call('ZADD', DUE, tonumber(s[3]) + TOMB, token)
    redis.call('EXPIRE', DUE, GC)
  else  -- a tombstone whose time is up
    redis.call('DEL', sk)
    redis.call('ZREM', DUE, token)
    if s[2] then redis.call('SREM', match_seats_key(s[2]), token) end
  end
end

local function sweep()
  while true do
    local n = redis.call('ZRANGE', NODES, 0, 0, 'WITHSCORES')
    local s = redis.call('ZRANGE', DUE, 0, 0, 'WITHSCORES')
    local nt = n[2] and tonumber(n[2]) or math.huge
    local st = s[2] and tonumber(s[2]) or math.huge
    if nt <= now and nt <= st then
      redis.call('RPUSH', LAPSED_NODES, n[1])
      redis.call('EXPIRE', LAPSED_NODES, GC)
      local gone = drop_node(n[1])
      if #gone > 0 then
        redis.call('RPUSH', LAPSED_MATCHES, unpack(gone))
        redis.call('EXPIRE', LAPSED_MATCHES, GC)
      end
    elseif st <= now then
      seat_due(s[1])
    else
      return
    end
  end
end

local function alive(node) return redis.call('EXISTS', node_key(node)) == 1 end

-- A match as a reply: its id, fields and its node's URL (false when it is not listed).
local function info(id)
  local m = redis.call('HMGET', match_key(id), 'node', 'ruleset', 'labels', 'max_players', 'players', 'reserved',
                       'created', 'room')
  if not m[1] then return false end
  return {id, m[1], m[2], m[3], m[4], m[5], m[6], m[7], m[8], redis.call('HGET', node_key(m[1]), 'url')}
end

local function infos(ids)
  local out = {}
  for _, id in ipairs(ids) do
    local m = info(id)
    if m then out[#out + 1] = m end
  end
  return out
end

-- Keep what a live node's matches need from Redis's own expiry (the garbage collection of a dead cluster).
local function keep(node)
  redis.call('EXPIRE', node_key(node), GC)
  redis.call('EXPIRE', node_matches_key(node), GC)
  redis.call('EXPIRE', mail_key(node), GC)
  for _, k in ipairs({NODES, DUE, ALL}) do redis.call('EXPIRE', k, GC) end
  for _, id in ipairs(redis.call('ZRANGE', node_matches_key(node), 0, -1)) do
    redis.call('EXPIRE', match_key(id), GC)
    redis.call('EXPIRE', match_seats_key(id), GC)
    local indexes = redis.call('HGET', match_key(id), 'indexes')
    if indexes then
      for _, k in ipairs(cjson.decode(indexes)) do redis.call('EXPIRE', P .. k, GC) end
    end
  end
end

local ops = {}

function ops.heartbeat(id, url, load, accepting, expires)
  local known = alive(id)
  redis.call('HSET', node_key(id), 'url', url, 'load', load, 'accepting', accepting, 'expires', expires)
  redis.call('ZADD', NODES, expires, id)
  keep(id)
  return known and 1 or 0
end

function ops.remove_node(id)
  if not redis.call('ZSCORE', NODES, id) then return {} end
  return drop_node(id)
end

function ops.nodes()
  local out = {}
  for _, id in ipairs(redis.call('ZRANGE', NODES, 0, -1)) do
    local n = redis.call('HMGET', node_key(id), 'url', 'load', 'accepting', 'expires')
    if n[1] then out[#out + 1] = {id, n[1], n[2], n[3], n[4]} end
  end
  return out
end

function ops.add_match(id, node, ruleset, labels, max_players, players, room, indexes)
  if not alive(node) then return {'unknown_node'} end
  local mk = match_key(id)
  if redis.call('EXISTS', mk) == 1 then return {'duplicate'} end
  redis.call('HSET', mk, 'node', node, 'ruleset', ruleset, 'labels', labels, 'max_players', max_players,
             'players', players, 'reserved', 0, 'created', ARGV[3], 'room', room, 'indexes', indexes)
  redis.call('EXPIRE', mk, GC)
  redis.call('ZADD', node_matches_key(node), 0, id)
  for _, k in ipairs(cjson.decode(indexes)) do
    redis.call('ZADD', P .. k, ARGV[3], id)
    redis.call('EXPIRE', P .. k, GC)
  end
  return {'ok', info(id)}
end

function ops.node_matches(node)
  return infos(redis.call('ZRANGE', node_matches_key(node), 0, -1))
end

function ops.move_match(id, node)
  local mk = match_key(id)
  local old = redis.call('HGET', mk, 'node')
  if not old then return {'unknown_match'} end
  if not alive(node) then return {'unknown_node'} end
  redis.call('ZREM', node_matches_key(old), id)
  redis.call('ZADD', node_matches_key(node), 0, id)
  redis.call('HSET', mk, 'node', node)
  keep(node)
  return {'ok', info(id)}
end

function ops.change_players(id, delta)
  local mk = match_key(id)
  local players = redis.call('HGET', mk, 'players')
  if not players then return {'unknown_match'} end
  redis.call('HSET', mk, 'players', math.max(0, tonumber(players) + tonumber(delta)))
  return {'ok', info(id)}
end

function ops.remove_match(id)
  drop_match(id)
  return 1
end

function ops.get_match(id)
  return {info(id)}
end

-- Walk the smallest of the indexes given (each ordered by creation), keep the matches in all the others
-- (and open, if asked), until `limit` are found or `budget` entries were read. Replies {examined, matches...}.
function ops.list_matches(limit, open_only, budget, ...)
  limit, budget = tonumber(limit), tonumber(budget)
  local keys = {...}
  local best, best_size = 1, nil
  for i, k in ipairs(keys) do
    keys[i] = P .. k
    local size = redis.call('ZCARD', keys[i])
    if best_size == nil or size < best_size then best, best_size = i, size end
  end
  local walk = table.remove(keys, best)
  local found, examined, start = {}, 0, 0
  while #found < limit and examined < budget do
    local batch = redis.call('ZRANGE', walk, start, start + 99)
    if #batch == 0 then break end
    start = start + #batch
    for _, id in ipairs(batch) do
      examined = examined + 1
      local fits = true
      for _, k in ipairs(keys) do
        if not redis.call('ZSCORE', k, id) then fits = false; break end
      end
      if fits and open_only == '1' then
        local m = redis.call('HMGET', match_key(id), 'max_players', 'players', 'reserved')
        fits = m[1] and tonumber(m[2]) + tonumber(m[3]) < tonumber(m[1])
      end
      local m = fits and info(id)
      if m then
        found[#found + 1] = m
        if #found >= limit then break end
      end
      if examined >= budget then break end
    end
  end
  return {tostring(examined), found}
end

function ops.reserve(id, token, expires, ttl, seat_gc)
  local mk = match_key(id)
  local m = redis.call('HMGET', mk, 'max_players', 'players', 'reserved', 'node')
  if not m[1] then return {'unknown_match'} end
  if tonumber(m[2]) + tonumber(m[3]) >= tonumber(m[1]) then return {'full', m[1]} end
  local sk = seat_key(token)
  if redis.call('EXISTS', sk) == 1 then return {'again'} end
  redis.call('HSET', sk, 'match', id, 'state', 'held', 'expires', expires, 'ttl', ttl)
  redis.call('EXPIRE', sk, seat_gc)
  redis.call('SADD', match_seats_key(id), token)
  redis.call('EXPIRE', match_seats_key(id), GC)
  redis.call('ZADD', DUE, expires, token)
  redis.call('EXPIRE', DUE, GC)
  redis.call('HINCRBY', mk, 'reserved', 1)
  return {'ok', redis.call('HGET', node_key(m[4]), 'url')}
end

function ops.take(token, id, tomb_gc)
  local sk = seat_key(token)
  local s = redis.call('HMGET', sk, 'match', 'state', 'ttl')
  if not s[1] then return {'unknown'} end
  if s[1] ~= id then return {'other', s[1]} end
  if s[2] == 'taken' then return {'taken'} end
  if s[2] == 'lapsed' then return {'lapsed', s[3]} end
  local mk = match_key(id)
  if redis.call('EXISTS', mk) == 0 then return {'unknown'} end
  redis.call('HINCRBY', mk, 'reserved', -1)
  redis.call('HINCRBY', mk, 'players', 1)
  redis.call('HSET', sk, 'state', 'taken')
  redis.call('ZADD', DUE, now + TOMB, token)
  redis.call('EXPIRE', DUE, GC)
  redis.call('EXPIRE', sk, tomb_gc)
  return {'ok', info(id)}
end

function ops.expire()
  local seats = redis.call('GET', LAPSED_SEATS) or '0'
  local nodes = redis.call('LRANGE', LAPSED_NODES, 0, -1)
  local matches = redis.call('LRANGE', LAPSED_MATCHES, 0, -1)
  redis.call('DEL', LAPSED_SEATS, LAPSED_NODES, LAPSED_MATCHES)
  return {seats, nodes, matches}
end

function ops.post(node, payload)
  if not alive(node) then return 0 end
  redis.call('RPUSH', mail_key(node), payload)
  redis.call('EXPIRE', mail_key(node), GC)
  return 1
end

sweep()
return ops[op](unpack(ARGV, 6))
