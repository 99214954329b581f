WITH month_lines AS (
    SELECT customer_id, count(DISTINCT order_id) AS orders, sum(amount) AS revenue
    FROM {{ lines_table }}
    WHERE CAST(order_ts AS DATE) BETWEEN CAST($month AS DATE) AND CAST($last_day AS DATE)
    GROUP BY customer_id
)
SELECT
    CAST($month AS DATE) AS snapshot_month,
    CAST($month_end AS DATE) AS month_end,
    r.customer_id,
    {{ rfm_columns }},
    b.age_band, b.gender, b.occupation, b.occupation_group, b.price_segment,
    -- the label of marts.behavioural_segments
    b.age_band || ' | ' || b.gender || ' | ' || b.occupation_group || ' | ' || b.price_segment
        AS behavioural_segment,
    coalesce(m.orders, 0) AS month_orders,
    CAST(coalesce(m.revenue, 0) AS DECIMAL(38, 4)) AS month_revenue
FROM _snapshot_rfm AS r
JOIN _snapshot_behaviour AS b USING (customer_id)
LEFT JOIN month_lines AS m USING (customer_id)
ORDER BY r.customer_id
