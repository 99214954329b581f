WITH stored AS (
    SELECT snapshot_month, min(window_start) AS window_start, max(window_end) AS window_end,
           count(*) AS customers, sum(monetary) AS monetary
    FROM {{ marts.customer_snapshots }}
    GROUP BY snapshot_month
),
{{ window_customers_ctes }},
-- spend per day (a few hundred rows), summed over each window
day_spend AS (
    SELECT CAST(order_ts AS DATE) AS day, sum(amount) AS amount
    FROM {{ staging.transactions }}
    GROUP BY 1
),
window_spend AS (
    SELECT s.snapshot_month, sum(d.amount) AS monetary
    FROM stored AS s
    JOIN day_spend AS d ON d.day BETWEEN s.window_start AND s.window_end
    GROUP BY s.snapshot_month
)
SELECT s.snapshot_month, s.customers AS stored_customers,
       coalesce(w.window_customers, 0) AS current_customers,
       CAST(s.monetary AS DOUBLE) AS stored_monetary,
       CAST(coalesce(m.monetary, 0) AS DOUBLE) AS current_monetary
FROM stored AS s
LEFT JOIN window_customers AS w USING (snapshot_month)
LEFT JOIN window_spend AS m USING (snapshot_month)
ORDER BY s.snapshot_month
