WITH p AS (
    SELECT *, category = $unknown_category AS uncategorised
    FROM {{ marts.segment_product_purchases }}
),
totals AS (
    SELECT CAST(coalesce(sum(amount) FILTER (WHERE NOT uncategorised), 0) AS DOUBLE)
               AS all_revenue,
           count(DISTINCT customer_id) AS all_customers
    FROM p
),
segments AS (
    SELECT segment, min(segment_order) AS segment_order,
           CAST(coalesce(sum(amount) FILTER (WHERE NOT uncategorised), 0) AS DOUBLE)
               AS segment_revenue,
           CAST(coalesce(sum(amount) FILTER (WHERE uncategorised), 0) AS DOUBLE)
               AS segment_uncategorised_revenue,
           count(DISTINCT customer_id) AS segment_customers
    FROM p GROUP BY segment
),
categories AS (
    SELECT category, CAST(sum(amount) AS DOUBLE) AS category_revenue,
           count(DISTINCT customer_id) AS category_customers
    FROM p WHERE NOT uncategorised GROUP BY category
),
cells AS (
    SELECT segment, category,
           count(DISTINCT customer_id) AS customers, count(DISTINCT order_id) AS orders,
           count(*) AS lines, CAST(sum(amount) AS DOUBLE) AS revenue
    FROM p WHERE NOT uncategorised GROUP BY segment, category
),
grid AS (
    SELECT s.*, c.*, t.*,
           coalesce(x.customers, 0) AS customers, coalesce(x.orders, 0) AS orders,
           coalesce(x.lines, 0) AS lines, coalesce(x.revenue, 0) AS revenue,
           -- k of the segment's own customers, at its own mean spend: the data keep the
           -- weight n / (n + k) whatever the segment spends (a few big spenders are still few)
           CAST($prior_strength AS DOUBLE) * s.segment_revenue / nullif(s.segment_customers, 0)
               AS prior_spend
    FROM segments AS s
    CROSS JOIN categories AS c
    CROSS JOIN totals AS t
    LEFT JOIN cells AS x USING (segment, category)
),
shares AS (
    SELECT *,
           revenue / nullif(segment_revenue, 0) AS spend_share,
           category_revenue / nullif(all_revenue, 0) AS overall_share
    FROM grid
),
shrunk AS (
    SELECT *,
           CASE WHEN segment_revenue > 0
                THEN (revenue + prior_spend * overall_share) / (segment_revenue + prior_spend)
                ELSE overall_share  -- no spend with a category: the prior alone
           END AS shrunk_share
    FROM shares
)
SELECT
    CAST(segment_order AS INTEGER) AS segment_order, segment, category,
    customers, orders, lines, revenue, segment_customers, segment_revenue,
    segment_uncategorised_revenue, spend_share, overall_share,
    spend_share / nullif(overall_share, 0) AS preference_index,
    prior_spend, shrunk_share,
    shrunk_share / nullif(overall_share, 0) AS shrunk_index,
    customers / nullif(segment_customers, 0) AS penetration,
    category_customers / nullif(all_customers, 0) AS overall_penetration,
    (customers / nullif(segment_customers, 0))
        / nullif(category_customers / nullif(all_customers, 0), 0) AS penetration_index,
    customers < $min_support_customers AS low_support
FROM shrunk
ORDER BY segment_order, category
