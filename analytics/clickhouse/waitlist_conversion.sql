-- Matches GET /api/v1/analytics/waitlist, its range-wide figures: of the addresses
-- that joined the waitlist in the range, how many (`cohort`) and the share that has
-- graduated since (`conversion_rate`, null when none joined); and the median and 90th
-- percentile of the seconds from joining to graduating of those that graduated in the
-- range (interpolated between the two nearest, as PostgreSQL's percentile_cont; null
-- when none did). Reads waitlist_graduations.sql. Substitute {from_ms} and {to_ms} as
-- in events_by_type.sql.
SELECT
    cohort,
    if(cohort = 0, NULL, cohort_graduated / cohort) AS conversion_rate,
    if(n = 0, NULL, waits[lo50] + (at50 - floor(at50)) * (waits[hi50] - waits[lo50]))
        AS median_seconds_to_graduate,
    if(n = 0, NULL, waits[lo90] + (at90 - floor(at90)) * (waits[hi90] - waits[lo90]))
        AS p90_seconds_to_graduate
FROM (
    SELECT
        cohort,
        cohort_graduated,
        waits,
        length(waits) AS n,
        0.5 * (n - 1) AS at50,
        toUInt64(floor(at50)) + 1 AS lo50,
        toUInt64(ceil(at50)) + 1 AS hi50,
        0.9 * (n - 1) AS at90,
        toUInt64(floor(at90)) + 1 AS lo90,
        toUInt64(ceil(at90)) + 1 AS hi90
    FROM (
        SELECT
            countIf(joined_ms >= {from_ms} AND joined_ms < {to_ms}) AS cohort,
            countIf(joined_ms >= {from_ms} AND joined_ms < {to_ms} AND graduated_ms != 0)
                AS cohort_graduated,
            arraySort(groupArrayIf((graduated_ms - joined_ms) / 1000, graduated_ms != 0
                AND graduated_ms >= {from_ms} AND graduated_ms < {to_ms} AND joined_ms != 0))
                AS waits
        FROM waitlist_graduations
    )
)
