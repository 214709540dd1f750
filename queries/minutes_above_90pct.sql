-- Question: for how many minutes was each server above 90 % of its capacity?
-- A minute counts when concurrency exceeded 90 % of the capacity in force at some instant in it.
SELECT server,
       sum(CASE WHEN peak > 0.9 * capacity THEN 1 ELSE 0 END) AS minutes_above_90pct,
       count(*)                                                AS minutes_observed
FROM (
    SELECT server, date_trunc('minute', ts) AS minute, max(peak) AS peak, min(capacity) AS capacity
    FROM concurrency
    WHERE capacity IS NOT NULL
    GROUP BY server, date_trunc('minute', ts)
) per_minute
GROUP BY server
ORDER BY server;
