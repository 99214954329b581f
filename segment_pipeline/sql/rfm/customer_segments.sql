WITH lines AS (
    SELECT customer_id, order_id, CAST(order_ts AS DATE) AS order_date, amount
    FROM {{ staging.transactions }}
    WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end
),
per_customer AS (
    SELECT
        customer_id,
        min(order_date) AS first_purchase_date,
        max(order_date) AS last_purchase_date,
        count(DISTINCT order_id) AS frequency,
        sum(amount) AS monetary
    FROM lines
    GROUP BY customer_id
),
valued AS (
    SELECT
        *,
        CAST(date_diff('day', last_purchase_date, CAST($as_of AS DATE)) AS INTEGER)
            AS recency_days,
        count(*) OVER () AS n_customers
    FROM per_customer
),
{{ scoring_ctes }}
SELECT
    s.customer_id, s.first_purchase_date, s.last_purchase_date, s.recency_days, s.frequency,
    CAST(s.monetary AS DECIMAL(38, 4)) AS monetary,
    s.r_score, s.f_score, s.m_score, s.rf_cell, s.rfm_code, s.segment, s.segment_order,
    CAST($as_of AS DATE) AS as_of,
    CAST($window_start AS DATE) AS window_start,
    CAST($window_end AS DATE) AS window_end
FROM cells AS s
ORDER BY s.customer_id
