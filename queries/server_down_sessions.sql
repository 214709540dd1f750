-- Question: which sessions were cut off by a server going down, and how long had they run?
-- Per server: how many sessions ended with `server_down`, when, and the users affected.
SELECT server,
       min(ended)                                AS went_down,
       count(*)                                  AS sessions_cut,
       round(avg(duration_s) / 60, 1)            AS avg_minutes_connected,
       string_agg(user, ',' ORDER BY user)       AS users
FROM sessions
WHERE end_reason = 'server_down'
GROUP BY server
ORDER BY server;
