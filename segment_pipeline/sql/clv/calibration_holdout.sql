WITH purchase_days AS (
    SELECT DISTINCT customer_id, CAST(order_ts AS DATE) AS purchase_date
    FROM {{ staging.transactions }}
    WHERE CAST(order_ts AS DATE) BETWEEN $period_start AND $holdout_end
),
per_customer AS (
    SELECT
        customer_id,
        count(*) FILTER (WHERE purchase_date <= $calibration_end) AS calibration_days,
        min(purchase_date) AS first_purchase_date,
        max(purchase_date) FILTER (WHERE purchase_date <= $calibration_end) AS last_calibration,
        count(*) FILTER (WHERE purchase_date > $calibration_end) AS holdout_purchases
    FROM purchase_days
    GROUP BY customer_id
)
SELECT
    customer_id,
    calibration_days - 1 AS frequency,
    CAST(date_diff('day', first_purchase_date, last_calibration) AS DOUBLE) AS recency,
    CAST(date_diff('day', first_purchase_date, CAST($calibration_end AS DATE)) AS DOUBLE)
        AS "T",
    holdout_purchases
FROM per_customer
WHERE calibration_days > 0
ORDER BY customer_id
