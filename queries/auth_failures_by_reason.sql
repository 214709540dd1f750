-- Question: how many token (OTP) failures and connection refusals were there, and why?
-- Counts per event type and reason, with the users affected.
SELECT type,
       reason,
       count(*)                 AS events,
       count(DISTINCT user)     AS users
FROM events
WHERE type IN ('auth_fail', 'reject')
GROUP BY type, reason
ORDER BY type, events DESC, reason;
