WITH stored AS (
    SELECT snapshot_month, min(window_start) AS window_start, max(window_end) AS window_end,
           count(*) AS rows, count(DISTINCT customer_id) AS customers,
           count(*) FILTER (WHERE segment IS NULL
                            OR list_position($segments::VARCHAR[], segment) IS NULL
                            OR r_score NOT BETWEEN 1 AND 5 OR f_score NOT BETWEEN 1 AND 5
                            OR m_score NOT BETWEEN 1 AND 5) AS bad_rows,
           -- a DISTINCT row value, which sqlfluff reads as a call of a function DISTINCT
           count(DISTINCT (window_start, window_end, as_of)) AS windows  -- noqa: CP03, ST08, LT01, LT05, LT06
    FROM {{ marts.customer_snapshots }}
    WHERE snapshot_month BETWEEN $first AND $last
    GROUP BY snapshot_month
)
SELECT s.snapshot_month, s.rows, s.customers, s.bad_rows, s.windows
FROM stored AS s
ORDER BY s.snapshot_month
