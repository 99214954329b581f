-- Spend stays DECIMAL (exact) until the end: DOUBLE sums depend on the order DuckDB's
-- threads add them in, and two runs differed in the last digit.
WITH purchase_days AS (
    SELECT customer_id, CAST(order_ts AS DATE) AS purchase_date,
           sum(amount) AS spend
    FROM {{ staging.transactions }}
    WHERE CAST(order_ts AS DATE) BETWEEN $period_start AND $period_end
    GROUP BY ALL
)
SELECT
    customer_id,
    min(purchase_date) AS first_purchase_date,
    max(purchase_date) AS last_purchase_date,
    count(*) AS purchase_days,
    count(*) - 1 AS frequency,
    CAST(date_diff('day', min(purchase_date), max(purchase_date)) AS DOUBLE) AS recency,
    CAST(date_diff('day', min(purchase_date), CAST($period_end AS DATE)) AS DOUBLE) AS "T",
    -- repeat days = all days but the first (one aggregation pass, no window function)
    coalesce(
        CAST(sum(spend) - arg_min(spend, purchase_date) AS DOUBLE) / nullif(count(*) - 1, 0),
        0.0
    ) AS monetary,
    CAST(sum(spend) AS DOUBLE) AS total_spend
FROM purchase_days
GROUP BY customer_id
ORDER BY customer_id
