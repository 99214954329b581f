WITH counts AS (
    SELECT snapshot_month, count(*) AS customers FROM {{ marts.customer_snapshots }} GROUP BY 1
),
sums AS (
    SELECT from_month, to_month, dimension,
           sum(customers) FILTER (WHERE from_state <> '(entered)') AS out_of_from,
           sum(customers) FILTER (WHERE to_state <> '(left)') AS into_to,
           sum(customers) FILTER (WHERE from_state = '(entered)') AS entered,
           sum(customers) FILTER (WHERE to_state = '(left)') AS left_window
    FROM {{ marts.segment_transitions }}
    GROUP BY ALL
)
SELECT s.from_month, s.to_month, s.dimension,
       coalesce(s.out_of_from, 0) AS out_of_from, f.customers AS from_customers,
       coalesce(s.into_to, 0) AS into_to, t.customers AS to_customers,
       coalesce(s.entered, 0) AS entered, coalesce(s.left_window, 0) AS left_window
FROM sums AS s
JOIN counts AS f ON f.snapshot_month = s.from_month
JOIN counts AS t ON t.snapshot_month = s.to_month
ORDER BY s.from_month, s.dimension
