WITH stored AS (
    SELECT snapshot_month, min(window_start) AS window_start, max(window_end) AS window_end,
           count(*) AS customers, sum(monetary) AS monetary
    FROM {{ marts.customer_snapshots }}
    GROUP BY snapshot_month
),
days AS (
    SELECT customer_id, CAST(order_ts AS DATE) AS day, sum(amount) AS amount
    FROM {{ staging.transactions }}
    GROUP BY ALL
),
now AS (
    SELECT s.snapshot_month, count(DISTINCT d.customer_id) AS customers, sum(d.amount) AS monetary
    FROM stored AS s
    JOIN days AS d ON d.day BETWEEN s.window_start AND s.window_end
    GROUP BY s.snapshot_month
)
SELECT s.snapshot_month, s.customers AS stored_customers,
       coalesce(n.customers, 0) AS current_customers,
       CAST(s.monetary AS DOUBLE) AS stored_monetary,
       CAST(coalesce(n.monetary, 0) AS DOUBLE) AS current_monetary
FROM stored AS s
LEFT JOIN now AS n USING (snapshot_month)
ORDER BY s.snapshot_month
