WITH segment_list AS (
    SELECT
        unnest($segments::VARCHAR[]) AS segment,
        unnest(range(1, len($segments::VARCHAR[]) + 1)) AS segment_order
),
-- read three times: NOT MATERIALIZED, each read scans only the columns it needs (a materialised
-- copy of 5.4M customers' rows did not fit in the default memory limit with 100M lines)
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
),
-- Distinct orders of the segment's customers in the window: an order id shared by two
-- customers of a segment is one order (sum(frequency) would count it twice). Counted as
-- DISTINCT (segment, order) rows, a grouping DuckDB can spill: count(DISTINCT order_id) per
-- segment held every order id in memory.
segment_orders AS (
    SELECT segment, count(*) AS orders
    FROM (
        SELECT DISTINCT c.segment, l.order_id
        FROM {{ staging.transactions }} AS l
        INNER JOIN c USING (customer_id)
        WHERE CAST(l.order_ts AS DATE) BETWEEN c.window_start AND c.window_end
    )
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
LEFT JOIN segment_orders AS o USING (segment)
ORDER BY l.segment_order
