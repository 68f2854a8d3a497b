#!lua name=charging_v1
--[[
Balance mutations. Each function runs atomically and touches only the keys of one bucket:
  KEYS[1] account hash   KEYS[2] reservations   KEYS[3] sessions
  KEYS[4] expiry zset    KEYS[5] ledger stream  KEYS[6] idempotency record
  ARGV[1] tenant  ARGV[2] account  ARGV[3] now (ms)  ARGV[4] idempotency TTL (s)
available = balance + credit - reserved. Every mutation appends one ledger entry to the bucket's
stream (read by settlement) and increments the account's seq, so Postgres can tell which entries
a Redis balance already contains.
Amounts are integers (micros) well below 2^53, exact in Lua numbers; balances move with HINCRBY.
]]

local function num(v) return tonumber(v) or 0 end

local function member(ARGV, call) return ARGV[1] .. ' ' .. ARGV[2] .. ' ' .. call end

-- A ledger entry is two stream fields: 'e', the msgpack array {tenant, account, seq, kind,
-- amount, reserved, balance, idem, ts, call} (numbers as the mutation had them: integers or
-- their decimal strings), and 'x', the caller's msgpack extra as given. Two fields instead of
-- eleven make the XADD and the settlement's reads and decoding several times cheaper.
-- `bal` is the balance after the mutation when the caller knows it (one read fewer).
local function append(KEYS, ARGV, kind, amt, rsv, call, idem, extra, bal)
  local seq = redis.call('HINCRBY', KEYS[1], 'seq', 1)
  if bal == nil then bal = redis.call('HGET', KEYS[1], 'balance') end
  redis.call('XADD', KEYS[5], '*',
    'e', cmsgpack.pack({ARGV[1], ARGV[2], seq, kind, amt, rsv, bal, idem, ARGV[3], call}),
    'x', extra)
  return seq
end

-- The idempotency key as the caller named it (KEYS[6] without its bucket/account prefix).
local function idem_name(KEYS) return string.sub(KEYS[6], #KEYS[1] + 2) end

local function remember(KEYS, ARGV, result)
  redis.call('SET', KEYS[6], result, 'EX', tonumber(ARGV[4]))
end

local function account_state(KEYS)
  local f = redis.call('HMGET', KEYS[1], 'balance', 'credit', 'reserved', 'status')
  if not f[1] then return nil end
  return {balance = num(f[1]), credit = num(f[2]), reserved = num(f[3]), status = f[4],
          balance_text = f[1]}
end

--[[
Alerts (admin API, issue 4). A balance move that crosses a line appends one entry to the
bucket's alerts stream "{b:N}:alerts" (same hash tag as KEYS[5], derived from it), in the same
atomic call as the move, so no crossing is missed or reported twice. The watched quantity is the
*balance* (settled money, what the customer has paid in minus what was charged), not
"available": reservations come and go with every authorization and would make alerts flap.
Account hash fields (absent = defaults):
  lbt  low-balance thresholds, comma-separated micros ("" or absent: none)
  lbh  hysteresis (micros): a fired threshold re-arms once balance >= threshold + lbh
  lba  one armed flag per threshold ('1' armed, '0' fired); absent = all armed
  exa  '0' once "exhausted" fired (balance + credit <= 0); re-armed when it rises above lbh
Entry fields: t a k(low_balance|exhausted|status_changed) s(seq) bal thr ts from to.
]]
local ALERTS_MAXLEN = 100000  -- bounded even when no consumer runs (admin API off)

local function alerts_key(KEYS) return string.sub(KEYS[5], 1, -7) .. 'alerts' end

local function alert(KEYS, ARGV, kind, seq, bal, thr, from, to)
  redis.call('XADD', alerts_key(KEYS), 'MAXLEN', '~', ALERTS_MAXLEN, '*',
    't', ARGV[1], 'a', ARGV[2], 'k', kind, 's', seq, 'bal', bal, 'thr', thr or '',
    'ts', ARGV[3], 'from', from or '', 'to', to or '')
end

-- After a balance move of `delta` to `bal`: fire crossed lines, re-arm recovered ones.
-- A line fires only on a downward move, so an idle account already below fires nothing.
local function watch(KEYS, ARGV, seq, bal, delta)
  local f = redis.call('HMGET', KEYS[1], 'credit', 'lbt', 'lbh', 'lba', 'exa')
  local hys = num(f[3])
  local funds = bal + num(f[1])
  if f[5] == '0' then
    if funds > hys then redis.call('HDEL', KEYS[1], 'exa') end
  elseif funds <= 0 and delta < 0 then
    alert(KEYS, ARGV, 'exhausted', seq, bal, '0')
    redis.call('HSET', KEYS[1], 'exa', '0')
  end
  if not f[2] or f[2] == '' then return end
  local armed, out, i, changed = f[4] or '', {}, 0, false
  for thr in string.gmatch(f[2], '[^,]+') do
    i = i + 1
    local t, a = tonumber(thr), string.sub(armed, i, i)
    local now = a
    if a == '0' then
      if bal >= t + hys then now = '1' end
    elseif bal < t and delta < 0 then
      alert(KEYS, ARGV, 'low_balance', seq, bal, thr)
      now = '0'
    else
      now = '1'
    end
    if now ~= a then changed = true end
    out[i] = now
  end
  if changed then redis.call('HSET', KEYS[1], 'lba', table.concat(out)) end
end

-- authorize: ARGV[5] call, [6] cap, [7] minimum, [8] expires ms, [9] session blob, [10] extra
-- KEYS[6] is the call's end record: a call that already ended cannot be authorized again.
-- -> {status, reserved, available after, repeated}; a repeated authorize returns the existing
-- reservation (repeated = 1) and changes nothing.
local function authorize(KEYS, ARGV)
  local call = ARGV[5]
  if redis.call('EXISTS', KEYS[6]) == 1 then return {'already_ended', 0, 0, 0} end
  local a = account_state(KEYS)
  if not a then return {'unknown_account', 0, 0, 0} end
  local avail = a.balance + a.credit - a.reserved
  local existing = redis.call('HGET', KEYS[2], call)
  if existing then return {'ok', num(existing), avail, 1} end
  -- refusal replies are 'account_' .. status (account_status.refused_by reads them)
  if a.status ~= 'active' then return {'account_' .. a.status, 0, avail, 0} end
  local minimum, cap = tonumber(ARGV[7]), tonumber(ARGV[6])
  if avail < minimum then return {'insufficient_funds', 0, avail, 0} end
  local amt = cap
  if avail < amt then amt = math.max(avail, 0) end
  redis.call('HINCRBY', KEYS[1], 'reserved', amt)
  redis.call('HSET', KEYS[2], call, amt)
  redis.call('HSET', KEYS[3], call, ARGV[9])
  redis.call('ZADD', KEYS[4], tonumber(ARGV[8]), member(ARGV, call))
  append(KEYS, ARGV, 'reserve', 0, amt, call, 'reserve:' .. call, ARGV[10], a.balance_text)
  return {'ok', amt, avail - amt, 0}
end

-- answer: ARGV[5] call, [6] answer ms, [7] expires ms. The first answer wins.
-- -> {status, answer ms, reserved}
local function answer(KEYS, ARGV)
  local call = ARGV[5]
  local amt = redis.call('HGET', KEYS[2], call)
  if not amt then return {'not_found', 0, 0} end
  redis.call('HSETNX', KEYS[3], call .. '|ans', ARGV[6])
  redis.call('ZADD', KEYS[4], 'XX', tonumber(ARGV[7]), member(ARGV, call))
  return {'ok', num(redis.call('HGET', KEYS[3], call .. '|ans')), num(amt)}
end

-- extend: ARGV[5] call, [6] extra wanted, [7] least useful extra, [8] expires ms, [9] extra
-- KEYS[6] identifies this extension (call + sequence): a retry reserves nothing more and
-- answers 'repeat' with the call's reservation. -> {status, reserved for the call, available}
local function extend(KEYS, ARGV)
  local call = ARGV[5]
  local done = redis.call('GET', KEYS[6])
  if done then return {'repeat', num(done), 0} end
  local held = redis.call('HGET', KEYS[2], call)
  if not held then return {'not_found', 0, 0} end
  local a = account_state(KEYS)
  local avail = a.balance + a.credit - a.reserved
  local want, least = tonumber(ARGV[6]), tonumber(ARGV[7])
  if a.status ~= 'active' then return {'account_' .. a.status, num(held), avail} end
  if avail < least or avail <= 0 then return {'insufficient_funds', num(held), avail} end
  local add = want
  if avail < add then add = avail end
  redis.call('HINCRBY', KEYS[1], 'reserved', add)
  local total = redis.call('HINCRBY', KEYS[2], call, add)
  redis.call('ZADD', KEYS[4], 'XX', tonumber(ARGV[8]), member(ARGV, call))
  append(KEYS, ARGV, 'extend', 0, add, call, idem_name(KEYS), ARGV[9], a.balance_text)
  remember(KEYS, ARGV, string.format('%d', total))
  return {'ok', total, avail - add}
end

-- settle: ARGV[5] call, [6] kind (commit|release|expire), [7] cost, [8] only if expired by
-- (ms, 0 = unconditionally), [9] extra, [10] billed seconds, [11] session blob.
-- KEYS[6] is the call's end record ("cost balance billed <blob>"): a call settles once, and a
-- later CDR can be re-rated from it. -> {status, cost charged, balance after, released}
local function settle(KEYS, ARGV)
  local call, kind, cost = ARGV[5], ARGV[6], tonumber(ARGV[7])
  local done = redis.call('GET', KEYS[6])
  if done then
    local c, b = string.match(done, '^(-?%d+) (-?%d+)')
    return {'duplicate', num(c), num(b), 0}
  end
  if redis.call('EXISTS', KEYS[1]) == 0 then return {'unknown_account', 0, 0, 0} end
  local expired_by = tonumber(ARGV[8])
  if expired_by > 0 then
    local score = redis.call('ZSCORE', KEYS[4], member(ARGV, call))
    if not score or tonumber(score) > expired_by then return {'not_expired', 0, 0, 0} end
  end
  local held = num(redis.call('HGET', KEYS[2], call))
  if held > 0 or redis.call('HEXISTS', KEYS[2], call) == 1 then
    redis.call('HINCRBY', KEYS[1], 'reserved', -held)
    redis.call('HDEL', KEYS[2], call)
    redis.call('HDEL', KEYS[3], call, call .. '|ans')
    redis.call('ZREM', KEYS[4], member(ARGV, call))
  end
  local bal
  if cost ~= 0 then
    bal = redis.call('HINCRBY', KEYS[1], 'balance', -cost)
  else
    bal = num(redis.call('HGET', KEYS[1], 'balance'))
  end
  local seq = append(KEYS, ARGV, kind, -cost, -held, call, idem_name(KEYS), ARGV[9], bal)
  watch(KEYS, ARGV, seq, bal, -cost)
  remember(KEYS, ARGV, string.format('%d %d %d ', cost, bal, tonumber(ARGV[10]) or 0)
    .. (ARGV[11] or ''))
  return {'ok', cost, bal, held}
end

-- credit: ARGV[5] kind (topup|adjust|withdraw|correction|expiry), [6] signed amount, [7] extra,
-- [8] call id (corrections of a settled call's charge)
-- A withdrawal or an expiry is refused beyond the available funds.
-- -> {status, balance after, available}
local function credit(KEYS, ARGV)
  local done = redis.call('GET', KEYS[6])
  if done then
    local b = tonumber(done)
    return {'duplicate', b, 0}
  end
  local a = account_state(KEYS)
  if not a then return {'unknown_account', 0, 0} end
  local kind, amount = ARGV[5], tonumber(ARGV[6])
  local avail = a.balance + a.credit - a.reserved
  if (kind == 'withdraw' or kind == 'expiry') and avail < -amount then
    return {'insufficient_funds', a.balance, avail}
  end
  local bal = redis.call('HINCRBY', KEYS[1], 'balance', amount)
  local seq = append(KEYS, ARGV, kind, amount, 0, ARGV[8] or '', idem_name(KEYS), ARGV[7], bal)
  watch(KEYS, ARGV, seq, bal, amount)
  remember(KEYS, ARGV, string.format('%d', bal))
  return {'ok', bal, avail + amount}
end

-- provision: ARGV[5] currency, [6] credit limit, [7] status, [8] extra.
-- Creates the account at balance 0 or updates its limit and status; a retry under the same
-- idempotency key changes nothing. -> {status, seq}
local function provision(KEYS, ARGV)
  local done = redis.call('GET', KEYS[6])
  if done then return {'duplicate', tonumber(done)} end
  local before = redis.call('HGET', KEYS[1], 'status')
  if redis.call('EXISTS', KEYS[1]) == 0 then
    redis.call('HSET', KEYS[1], 'balance', 0, 'reserved', 0, 'seq', 0)
  end
  redis.call('HSET', KEYS[1], 'currency', ARGV[5], 'credit', ARGV[6], 'status', ARGV[7])
  local seq = append(KEYS, ARGV, 'provision', 0, 0, '', idem_name(KEYS), ARGV[8])
  if before and before ~= ARGV[7] then
    alert(KEYS, ARGV, 'status_changed', seq, redis.call('HGET', KEYS[1], 'balance'), '',
      before, ARGV[7])
  end
  remember(KEYS, ARGV, string.format('%d', seq))
  return {'ok', seq}
end

-- restore: ARGV[5] balance, [6] seq, [7] currency, [8] credit, [9] status.
-- Rebuilds an account from the ledger of record; the reserved sum is recomputed from the
-- reservations still held. No ledger entry: this writes what the ledger already says.
local function restore(KEYS, ARGV)
  local reserved = 0
  local vals = redis.call('HVALS', KEYS[2])
  for i = 1, #vals do reserved = reserved + num(vals[i]) end
  redis.call('HSET', KEYS[1], 'balance', ARGV[5], 'seq', ARGV[6], 'currency', ARGV[7],
    'credit', ARGV[8], 'status', ARGV[9], 'reserved', reserved)
  return {'ok', reserved}
end

-- thresholds: ARGV[5] low-balance thresholds (comma-separated micros, "" for none),
-- [6] hysteresis (micros >= 0). Setting the same values again keeps the armed state; new
-- values re-arm every line and fire at once those the balance is already below (an operator
-- raising a threshold above the balance hears about it). No ledger entry: no money moves.
-- -> {status, alerts fired}
local function thresholds(KEYS, ARGV)
  local f = redis.call('HMGET', KEYS[1], 'balance', 'lbt', 'lbh', 'seq')
  if not f[1] then return {'unknown_account', 0} end
  if (f[2] or '') == ARGV[5] and num(f[3]) == num(ARGV[6]) then return {'unchanged', 0} end
  redis.call('HSET', KEYS[1], 'lbt', ARGV[5], 'lbh', ARGV[6])
  local bal, out, fired = num(f[1]), {}, 0
  for thr in string.gmatch(ARGV[5], '[^,]+') do
    if bal < tonumber(thr) then
      alert(KEYS, ARGV, 'low_balance', num(f[4]), bal, thr)
      fired = fired + 1
      out[#out + 1] = '0'
    else
      out[#out + 1] = '1'
    end
  end
  redis.call('HSET', KEYS[1], 'lba', table.concat(out))
  return {'ok', fired}
end

redis.register_function('ce_authorize', authorize)
redis.register_function('ce_answer', answer)
redis.register_function('ce_extend', extend)
redis.register_function('ce_settle', settle)
redis.register_function('ce_credit', credit)
redis.register_function('ce_provision', provision)
redis.register_function('ce_restore', restore)
redis.register_function('ce_thresholds', thresholds)
