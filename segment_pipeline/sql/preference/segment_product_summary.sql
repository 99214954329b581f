-- Read from the two tables segment_product_purchases' write keeps beside it
-- (logic/preference.py): the cells (lines, units and revenue per segment, product, category,
-- name, typical price and flag) and the reach (distinct orders and customers per segment and
-- product or category). Both equal what grouping every purchase line gives (the property test
-- compares them), and a new day updates them from the lines it changes, so this query reads a
-- few thousand rows where its distinct counts over every line took 9-10 s at 10M lines.
WITH cells AS (SELECT * FROM {{ marts.segment_product_summary_cells }}),
reach AS (SELECT * FROM {{ marts.segment_product_summary_reach }}),
segment_revenue AS (
    SELECT segment, sum(revenue) AS segment_revenue FROM cells GROUP BY segment
),
products AS (
    SELECT
        segment, min(segment_order) AS segment_order,
        product_id, min(product_name) AS item_name, min(category) AS category,
        sum(lines) AS lines, sum(quantity) AS quantity, sum(revenue) AS revenue,
        CAST(min(typical_unit_price) AS DOUBLE) AS typical_unit_price,
        bool_or(is_premium) AS is_premium
    FROM cells
    GROUP BY segment, product_id
),
categories AS (
    SELECT
        segment, min(segment_order) AS segment_order, category,
        sum(lines) AS lines, sum(quantity) AS quantity, sum(revenue) AS revenue
    FROM cells
    GROUP BY segment, category
),
items AS (
    SELECT
        'product' AS level, p.segment, p.segment_order, p.product_id AS item_id, p.item_name,
        p.category, p.lines, r.orders, r.customers, p.quantity, p.revenue,
        p.typical_unit_price, p.is_premium
    FROM products AS p
    JOIN reach AS r
        ON r.level = 'product' AND r.segment = p.segment AND r.item_id = p.product_id
    UNION ALL
    SELECT
        'category' AS level, c.segment, c.segment_order, c.category AS item_id,
        c.category AS item_name, c.category, c.lines, r.orders, r.customers, c.quantity,
        c.revenue, NULL, NULL
    FROM categories AS c
    JOIN reach AS r
        ON r.level = 'category' AND r.segment = c.segment AND r.item_id = c.category
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
