-- Question: who was connected to gw-06 at 08:45 on 24 March (two minutes before it crashed)?
-- A session is on at instant T when it started at or before T and had not ended by T.
SELECT session, user, site, os, app, started, ended, end_reason
FROM sessions
WHERE server = 'gw-06'
  AND started <= TIMESTAMP '2020-03-24 08:45:00'
  AND (ended IS NULL OR ended > TIMESTAMP '2020-03-24 08:45:00')
ORDER BY started, session;
