-- Per month and customer: the RFM layer's values over the month's window, for months whose
-- windows all start on the same day (the default: no look-back) and end later month by month.
-- Each summed order-day is counted once, in the first month whose window holds it, and a
-- month's values are running sums, minima and maxima over those months: time linear in
-- history where joining every month's window was months x history. An order counts from the
-- month of its first day in the window, so distinct orders stay distinct. Run once per bucket
-- of customers, as month_price_segments.sql.
WITH months AS (
    SELECT
        snapshot_month, window_start, window_end,
        lag(window_end) OVER (ORDER BY snapshot_month) AS previous_end
    FROM {{ months_table }}
),
first_month AS (
    -- the month that first holds each summed order-day (the earliest month's window holds
    -- everything from the shared start)
    SELECT m.snapshot_month, o.customer_id, o.order_id, o.order_date, o.amount
    FROM {{ order_days_table }} AS o
    JOIN months AS m
        ON o.order_date BETWEEN m.window_start AND m.window_end
        AND (m.previous_end IS NULL OR o.order_date > m.previous_end)
    {{ customer_bucket_filter }}
),
month_sums AS (
    SELECT
        snapshot_month, customer_id,
        min(order_date) AS first_date, max(order_date) AS last_date, sum(amount) AS amount
    FROM first_month
    GROUP BY snapshot_month, customer_id
),
new_orders AS (
    SELECT snapshot_month, customer_id, count(*) AS orders
    FROM (
        SELECT customer_id, order_id, min(snapshot_month) AS snapshot_month
        FROM first_month
        GROUP BY customer_id, order_id
    )
    GROUP BY snapshot_month, customer_id
),
customer_months AS (
    -- every month from a customer's first one on (a month without purchases keeps the
    -- customer, with the values so far)
    SELECT m.snapshot_month, c.customer_id
    FROM (
        SELECT customer_id, min(snapshot_month) AS first_month
        FROM month_sums
        GROUP BY customer_id
    ) AS c
    JOIN months AS m ON m.snapshot_month >= c.first_month
)
SELECT
    c.snapshot_month, c.customer_id,
    min(s.first_date) OVER so_far AS first_purchase_date,
    max(s.last_date) OVER so_far AS last_purchase_date,
    CAST(sum(coalesce(n.orders, 0)) OVER so_far AS BIGINT) AS frequency,
    sum(s.amount) OVER so_far AS monetary
FROM customer_months AS c
LEFT JOIN month_sums AS s USING (snapshot_month, customer_id)
LEFT JOIN new_orders AS n USING (snapshot_month, customer_id)
WINDOW so_far AS (
    PARTITION BY c.customer_id ORDER BY c.snapshot_month
    ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
)
