-- Question: during the 08:30–09:15 login storm, how close did each server come to its capacity?
-- Peak concurrency (the highest number of simultaneous sessions at any instant) per server in
-- the window, next to its capacity and as a percentage of it.
SELECT server,
       max(peak)                                    AS peak_sessions,
       max(capacity)                                AS capacity,
       round(100.0 * max(peak) / max(capacity), 1)  AS peak_pct_of_capacity
FROM concurrency
WHERE ts >= TIMESTAMP '2020-03-24 08:30:00' AND ts < TIMESTAMP '2020-03-24 09:15:00'
GROUP BY server
ORDER BY server;
