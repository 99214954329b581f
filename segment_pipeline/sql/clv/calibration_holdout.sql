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
-- One row per (frequency, recency, T) with the customers sharing it and their holdout
-- purchase days: all the fit and the comparison read (5.4M customers as pandas rows, their
-- ids among them, took hundreds of MB at 100M lines).
SELECT
    calibration_days - 1 AS frequency,
    CAST(date_diff('day', first_purchase_date, last_calibration) AS DOUBLE) AS recency,
    CAST(date_diff('day', first_purchase_date, CAST($calibration_end AS DATE)) AS DOUBLE)
        AS "T",
    count(*) AS customers,
    sum(holdout_purchases) AS holdout_purchases
FROM per_customer
WHERE calibration_days > 0
GROUP BY ALL
ORDER BY frequency, recency, "T"
