WITH segment_list AS (
    SELECT
        unnest($segments::VARCHAR[]) AS segment,
        unnest(range(1, len($segments::VARCHAR[]) + 1)) AS segment_order
),
-- read twice: NOT MATERIALIZED, each read scans only the columns it needs
c AS NOT MATERIALIZED (SELECT * FROM {{ marts.rfm_customer_segments }}),
totals AS (SELECT count(*) AS customers, sum(monetary) AS revenue FROM c),
per_segment AS (
    SELECT
        segment,
        count(*) AS customers,
        avg(recency_days) AS mean_recency_days,
        median(recency_days) AS median_recency_days,
        avg(frequency) AS mean_frequency,
        median(frequency) AS median_frequency,
        avg(monetary) AS mean_monetary,
        median(monetary) AS median_monetary,
        avg(r_score) AS mean_r_score,
        avg(f_score) AS mean_f_score,
        avg(m_score) AS mean_m_score,
        sum(monetary) AS revenue
    FROM c
    GROUP BY segment
)
SELECT
    CAST(l.segment_order AS INTEGER) AS segment_order,
    l.segment,
    coalesce(p.customers, 0) AS customers,
    coalesce(p.customers, 0) / nullif(t.customers, 0) AS customer_share,
    CAST(p.mean_recency_days AS DOUBLE) AS mean_recency_days,
    CAST(p.median_recency_days AS DOUBLE) AS median_recency_days,
    CAST(p.mean_frequency AS DOUBLE) AS mean_frequency,
    CAST(p.median_frequency AS DOUBLE) AS median_frequency,
    CAST(p.mean_monetary AS DOUBLE) AS mean_monetary,
    CAST(p.median_monetary AS DOUBLE) AS median_monetary,
    CAST(p.mean_r_score AS DOUBLE) AS mean_r_score,
    CAST(p.mean_f_score AS DOUBLE) AS mean_f_score,
    CAST(p.mean_m_score AS DOUBLE) AS mean_m_score,
    coalesce(o.orders, 0) AS orders,
    CAST(coalesce(p.revenue, 0) AS DOUBLE) AS revenue,
    CAST(coalesce(p.revenue, 0) AS DOUBLE) / nullif(CAST(t.revenue AS DOUBLE), 0)
        AS revenue_share,
    CAST(p.revenue AS DOUBLE) / nullif(o.orders, 0) AS aov
FROM segment_list AS l
CROSS JOIN totals AS t
LEFT JOIN per_segment AS p USING (segment)
-- the distinct orders per segment, computed first by rfm/segment_orders.sql (rfm.py)
LEFT JOIN _rfm_segment_orders AS o USING (segment)
ORDER BY l.segment_order
