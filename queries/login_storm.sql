-- Question: what did the login storm look like, minute by minute?
-- Sessions opened, connections refused (reject events) and token failures per minute over all
-- servers, 08:00–09:30: refusals climbing while connects flatten is the shape of a full gateway.
SELECT date_trunc('minute', ts)                                   AS minute,
       sum(CASE WHEN type = 'connect' THEN 1 ELSE 0 END)          AS connects,
       sum(CASE WHEN type = 'reject' THEN 1 ELSE 0 END)           AS rejects,
       sum(CASE WHEN type = 'auth_fail' THEN 1 ELSE 0 END)        AS auth_failures
FROM events
WHERE ts >= TIMESTAMP '2020-03-24 08:00:00' AND ts < TIMESTAMP '2020-03-24 09:30:00'
  AND type IN ('connect', 'reject', 'auth_fail')
GROUP BY date_trunc('minute', ts)
ORDER BY minute;
