-- The stored cells of segment_product_summary plus `{{ delta }}` (summary_cells.sql over the
-- lines an incremental write inserts, and over the lines it deletes counted -1): a cell left
-- without lines leaves the table.
SELECT
    segment, segment_order, product_id, category, product_name, typical_unit_price, is_premium,
    sum(lines) AS lines, sum(quantity) AS quantity, sum(revenue) AS revenue
FROM (
    SELECT
        segment, segment_order, product_id, category, product_name, typical_unit_price,
        is_premium, lines, quantity, revenue
    FROM {{ marts.segment_product_summary_cells }}
    UNION ALL
    SELECT
        segment, segment_order, product_id, category, product_name, typical_unit_price,
        is_premium, lines, quantity, revenue
    FROM {{ delta }}
)
GROUP BY ALL
HAVING sum(lines) <> 0
