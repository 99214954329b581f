SELECT count(DISTINCT last_day) FROM (
    SELECT customer_id, max(CAST(order_ts AS DATE)) AS last_day
    FROM {{ staging.transactions }} GROUP BY customer_id
)
