-- Question: how long did it take to get connected (tunnel setup, token check included), per
-- server, in 5-minute steps? p50 and p99 come from merging the per-minute HdrHistograms exactly,
-- not from averaging per-minute percentiles.
SELECT server,
       date_bin(INTERVAL '5 minutes', minute)            AS five_min,
       hdr_count(hdr_merge(hist))                        AS connects,
       hdr_quantile(hdr_merge(hist), 0.5)                AS setup_p50_ms,
       hdr_quantile(hdr_merge(hist), 0.99)               AS setup_p99_ms
FROM latency
WHERE metric = 'setup'
GROUP BY server, date_bin(INTERVAL '5 minutes', minute)
ORDER BY server, five_min;
