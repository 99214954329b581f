WITH stored AS (
    SELECT snapshot_month, min(window_start) AS window_start, max(window_end) AS window_end,
           count(*) AS customers, sum(monetary) AS monetary
    FROM {{ marts.customer_snapshots }}
    GROUP BY snapshot_month
),
-- Per month of `stored` (snapshot_month, window_start, window_end): the customers with a sale
-- line in the window, from staging. A customer is in [start, end] when its first line day on
-- or after `start` is on or before `end`: one pass over the customer days per distinct window
-- start (one, unless the RFM window has a look-back), instead of one scan of every line per
-- month.
customer_days AS (
    SELECT DISTINCT customer_id, CAST(order_ts AS DATE) AS day
    FROM {{ staging.transactions }}
    WHERE CAST(order_ts AS DATE) BETWEEN (SELECT min(window_start) FROM stored)
                                     AND (SELECT max(window_end) FROM stored)
),
window_starts AS (
    SELECT DISTINCT window_start FROM stored
),
first_days AS (
    SELECT w.window_start, d.customer_id, min(d.day) AS first_day
    FROM window_starts AS w
    JOIN customer_days AS d ON d.day >= w.window_start
    GROUP BY w.window_start, d.customer_id
),
window_customers AS (
    SELECT s.snapshot_month, count(*) AS window_customers
    FROM stored AS s
    JOIN first_days AS f ON f.window_start = s.window_start AND f.first_day <= s.window_end
    GROUP BY s.snapshot_month
),
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
