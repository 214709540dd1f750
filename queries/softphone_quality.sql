-- Question: how good was the voice path for Customer Care's softphones, per server?
-- Exact p99 of round-trip time and jitter over every sample of softphone sessions (nearest
-- rank over the raw samples in `events`, joined to `sessions` for the app).
WITH samples AS (
    SELECT e.server, e.rtt_ms, e.jitter_ms
    FROM events e
    JOIN sessions s ON s.session = e.session AND s.server = e.server
    WHERE e.type = 'latency' AND s.app = 'softphone'
),
ranked AS (
    SELECT server, rtt_ms, jitter_ms,
           row_number() OVER (PARTITION BY server ORDER BY rtt_ms)    AS rtt_rank,
           row_number() OVER (PARTITION BY server ORDER BY jitter_ms) AS jitter_rank,
           count(*) OVER (PARTITION BY server)                        AS n
    FROM samples
)
SELECT server,
       max(n)                                                               AS samples,
       max(CASE WHEN rtt_rank = ceil(0.99 * n) THEN rtt_ms END)             AS rtt_p99_ms,
       max(CASE WHEN jitter_rank = ceil(0.99 * n) THEN jitter_ms END)       AS jitter_p99_ms
FROM ranked
GROUP BY server
ORDER BY server;
