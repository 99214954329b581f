-- Per calendar month and customer: distinct orders and spend with a line in the month (every
-- snapshot's month_orders / month_revenue: its as-of day is the day after the month).
SELECT order_month, customer_id, count(*) AS orders, sum(amount) AS revenue
FROM (
    SELECT
        date_trunc('month', order_date)::DATE AS order_month, customer_id, order_id,
        sum(amount) AS amount
    FROM {{ order_days_table }}
    {{ customer_bucket_filter }}
    GROUP BY ALL
)
GROUP BY ALL
