WITH p AS (SELECT * FROM {{ marts.segment_product_purchases }}),
segment_revenue AS (
    SELECT segment, sum(amount) AS segment_revenue FROM p GROUP BY segment
),
items AS (
    SELECT
        'product' AS level, segment, min(segment_order) AS segment_order,
        product_id AS item_id, min(product_name) AS item_name, min(category) AS category,
        count(*) AS lines, count(DISTINCT order_id) AS orders,
        count(DISTINCT customer_id) AS customers, sum(quantity) AS quantity,
        sum(amount) AS revenue,
        CAST(min(typical_unit_price) AS DOUBLE) AS typical_unit_price,
        bool_or(is_premium) AS is_premium
    FROM p
    GROUP BY segment, product_id
    UNION ALL
    SELECT
        'category' AS level, segment, min(segment_order) AS segment_order,
        category AS item_id, category AS item_name, category,
        count(*), count(DISTINCT order_id), count(DISTINCT customer_id), sum(quantity),
        sum(amount), NULL, NULL
    FROM p
    GROUP BY segment, category
)
SELECT
    i.level, i.segment_order, i.segment, i.item_id, i.item_name, i.category,
    i.lines, i.orders, i.customers, i.quantity,
    CAST(i.revenue AS DOUBLE) AS revenue,
    CAST(i.revenue AS DOUBLE) / nullif(CAST(s.segment_revenue AS DOUBLE), 0) AS revenue_share,
    -- rank on the exact DECIMAL revenue; ties broken by id so the order never depends on rows
    row_number() OVER (PARTITION BY i.level, i.segment ORDER BY i.revenue DESC, i.item_id)
        AS rank_in_segment,
    i.typical_unit_price, i.is_premium
FROM items AS i
JOIN segment_revenue AS s USING (segment)
ORDER BY i.level DESC, i.segment_order, rank_in_segment
