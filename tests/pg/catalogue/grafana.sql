-- What Grafana's PostgreSQL data source sends when it connects, lists schemas, tables and
-- columns, and runs a time-series panel. From grafana/grafana:
--   public/app/plugins/datasource/grafana-postgresql-datasource/postgresMetaQuery.ts
--   (getVersion, getTimescaleDBVersion, showSchemas, showTables, getSchema), and
--   pkg/tsdb/grafana-postgresql-datasource/macros.go ($__timeFilter, $__timeGroupAlias,
--   $__timeFrom/$__timeTo expanded for 08:30 to 09:15 on 24 March 2020).
-- One statement per block; blocks end with a line holding only ';'.
SELECT 1
;
SELECT current_setting('server_version_num')::int/100 as version
;
SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'
;
SELECT schema_name AS "name"
    FROM information_schema.schemata
    WHERE schema_name NOT IN ('information_schema',
                              'pg_catalog',
                              'pg_toast',
                              '_timescaledb_cache',
                              '_timescaledb_catalog',
                              '_timescaledb_internal',
                              '_timescaledb_config',
                              'timescaledb_information',
                              'timescaledb_experimental')
    ORDER BY schema_name
;
SELECT quote_ident(table_name) AS "table"
      FROM information_schema.tables
      WHERE quote_ident(table_schema) = 'public'
      ORDER BY 1
;
SELECT
    CASE WHEN
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          )
      THEN quote_ident(table_name)
      ELSE quote_ident(table_schema) || '.' || quote_ident(table_name)
    END AS "table"
    FROM information_schema.tables
    WHERE quote_ident(table_schema) NOT IN ('information_schema',
                             'pg_catalog',
                             '_timescaledb_cache',
                             '_timescaledb_catalog',
                             '_timescaledb_internal',
                             '_timescaledb_config',
                             'timescaledb_information',
                             'timescaledb_experimental')
    ORDER BY CASE WHEN
          quote_ident(table_schema) IN (
          SELECT
            CASE WHEN trim(s[i]) = '"$user"' THEN user ELSE trim(s[i]) END
          FROM
            generate_series(
              array_lower(string_to_array(current_setting('search_path'),','),1),
              array_upper(string_to_array(current_setting('search_path'),','),1)
            ) as i,
            string_to_array(current_setting('search_path'),',') s
          ) THEN 0 ELSE 1 END, 1
;
SELECT quote_ident(column_name) AS "column", data_type AS "type"
    FROM information_schema.columns
    WHERE
      CASE WHEN array_length(parse_ident('public.concurrency'),1) = 2
        THEN quote_ident(table_schema) = (parse_ident('public.concurrency'))[1]
          AND quote_ident(table_name) = (parse_ident('public.concurrency'))[2]
        ELSE quote_ident(table_name) = 'public.concurrency'
      END
;
SELECT
  floor(extract(epoch from ts)/60)*60 AS "time",
  server,
  max(sessions) AS sessions,
  max(capacity) AS capacity
FROM concurrency
WHERE ts BETWEEN '2020-03-24T08:30:00Z' AND '2020-03-24T09:15:00Z'
GROUP BY 1, 2
ORDER BY 1, 2
;
SELECT
  floor(extract(epoch from minute)/300)*300 AS "time",
  server,
  hdr_quantile(hdr_merge(hist), 0.99) AS p99_ms
FROM latency
WHERE metric = 'setup' AND minute BETWEEN '2020-03-24T08:30:00Z' AND '2020-03-24T09:15:00Z'
GROUP BY 1, 2
ORDER BY 1, 2
;
SELECT ts AS "time", rule, server, state, severity, value, threshold
FROM alerts
WHERE ts BETWEEN '2020-03-24T08:30:00Z' AND '2020-03-24T09:15:00Z'
ORDER BY ts
;
