-- Question: was load spread evenly across the gateways over time?
-- At the end of every minute from 08:00 to 09:45: sessions on the busiest and the quietest
-- server, the spread between them, and the busiest as a multiple of the mean.
SELECT ts + INTERVAL '1 second' - INTERVAL '1 minute'  AS minute,
       max(sessions)                                    AS busiest,
       min(sessions)                                    AS quietest,
       max(sessions) - min(sessions)                    AS spread,
       round(max(sessions) / avg(sessions), 2)          AS busiest_over_mean
FROM concurrency
WHERE date_part('second', ts) = 59
  AND ts >= TIMESTAMP '2020-03-24 08:00:00'
GROUP BY ts
HAVING avg(sessions) > 0
ORDER BY minute;
