-- The view the waitlist queries read (waitlist.sql, waitlist_conversion.sql): per
-- address that joined the waitlist, when it joined (`data.created_at` of its latest
-- entry event that has one, as Roster's contact keeps `waitlistJoinedAt`) and when it
-- graduated (0 if it has not). That is Roster's rule:
-- - at the first event of a user whose first address was this one, after the entry
--   joined (a user's first event takes over the waitlist contact holding its address);
-- - else, when the entry's latest event says `completed` and a user has had the
--   address (one who had it before joining the waitlist): at that event's version.
-- Figures agree with Roster's under the default [clerk.user_deleted] action =
-- "unsubscribe", with two exceptions: with "delete", or contacts deleted through the
-- API, Roster forgets people this still counts; and a user who had the address only
-- before the entry joined, and another since, graduates here when the entry completes
-- and not in Roster. Create it once, after clerk_events.sql.
CREATE VIEW IF NOT EXISTS waitlist_graduations AS
SELECT
    email,
    joined_ms,
    if(graduated_by_user != 0, graduated_by_user, completed_ms * is_user) AS graduated_ms
FROM (
    SELECT
        email,
        joined_ms,
        completed_ms,
        minIf(first_ms, first_ms > joined_ms) AS graduated_by_user
    FROM (
        SELECT
            email,
            argMaxIf(created_at_ms, updated_at_ms, created_at_ms != 0) AS joined_ms,
            if(argMax(status, updated_at_ms) = 'completed', max(updated_at_ms), 0) AS completed_ms
        FROM clerk_events FINAL
        WHERE event_type IN ('waitlistEntry.created', 'waitlistEntry.updated') AND email != ''
        GROUP BY email
    )
    ALL LEFT JOIN (
        SELECT first_email AS email, first_ms
        FROM (
            SELECT argMin(email, updated_at_ms) AS first_email, min(updated_at_ms) AS first_ms
            FROM clerk_events FINAL
            WHERE event_type IN ('user.created', 'user.updated') AND email != ''
            GROUP BY subject_id
        )
    ) USING email
    GROUP BY email, joined_ms, completed_ms
)
ALL LEFT JOIN (
    SELECT DISTINCT email, 1 AS is_user
    FROM clerk_events FINAL
    WHERE event_type IN ('user.created', 'user.updated') AND email != ''
) USING email
