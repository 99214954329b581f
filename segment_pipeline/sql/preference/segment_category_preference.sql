-- The distinct counts per segment and category are segment_product_summary's category rows
-- (the same counts over the same lines): recounting them from the lines was 7 of this query's
-- 8 s at 10M lines. Every customer has one segment (the lines carry it from
-- rfm_customer_segments), so a category's customers are its segments' customers added up, and
-- all customers are the segments' added up. Sums stay DECIMAL until the end (exact, as if
-- summed over the lines).
WITH sums AS (
    SELECT segment, min(segment_order) AS segment_order, category,
           category = $unknown_category AS uncategorised,
           count(*) AS lines, sum(amount) AS revenue
    FROM {{ marts.segment_product_purchases }}
    GROUP BY segment, category
),
segment_customers AS (
    SELECT segment, count(DISTINCT customer_id) AS segment_customers
    FROM {{ marts.segment_product_purchases }}
    GROUP BY segment
),
cell_counts AS (
    SELECT segment, item_id AS category, customers, orders
    FROM {{ marts.segment_product_summary }}
    WHERE level = 'category'
),
totals AS (
    SELECT CAST(coalesce(sum(revenue) FILTER (WHERE NOT uncategorised), 0) AS DOUBLE)
               AS all_revenue,
           (SELECT CAST(sum(segment_customers) AS BIGINT) FROM segment_customers)
               AS all_customers
    FROM sums
),
segments AS (
    SELECT s.segment, min(s.segment_order) AS segment_order,
           CAST(coalesce(sum(s.revenue) FILTER (WHERE NOT s.uncategorised), 0) AS DOUBLE)
               AS segment_revenue,
           CAST(coalesce(sum(s.revenue) FILTER (WHERE s.uncategorised), 0) AS DOUBLE)
               AS segment_uncategorised_revenue,
           min(c.segment_customers) AS segment_customers
    FROM sums AS s
    JOIN segment_customers AS c USING (segment)
    GROUP BY s.segment
),
cells AS (
    SELECT s.segment, s.category, k.customers, k.orders, s.lines,
           CAST(s.revenue AS DOUBLE) AS revenue, s.revenue AS exact_revenue
    FROM sums AS s
    JOIN cell_counts AS k USING (segment, category)
    WHERE NOT s.uncategorised
),
categories AS (
    SELECT category, CAST(sum(exact_revenue) AS DOUBLE) AS category_revenue,
           CAST(sum(customers) AS BIGINT) AS category_customers
    FROM cells
    GROUP BY category
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
    LEFT JOIN (SELECT * EXCLUDE (exact_revenue) FROM cells) AS x USING (segment, category)
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
