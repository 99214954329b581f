-- Whether the summary's cells and reach describe the stored purchase lines: the cells' lines
-- and revenue add up to the table's, and every cell of the cells has its reach row and every
-- reach row its cells (per segment and product, and per segment and category). False on a
-- warehouse written by code that did not keep them, or after either table was recreated.
WITH cells AS (
    SELECT coalesce(sum(lines), 0) AS lines, coalesce(sum(revenue), 0) AS revenue
    FROM {{ marts.segment_product_summary_cells }}
),
purchases AS (
    SELECT count(*) AS lines, coalesce(sum(amount), 0) AS revenue
    FROM {{ marts.segment_product_purchases }}
),
items AS (
    SELECT DISTINCT 'product' AS level, segment, product_id AS item_id
    FROM {{ marts.segment_product_summary_cells }}
    UNION ALL
    SELECT DISTINCT 'category' AS level, segment, category AS item_id
    FROM {{ marts.segment_product_summary_cells }}
),
unmatched AS (
    SELECT count(*) AS n
    FROM items AS i
    FULL JOIN {{ marts.segment_product_summary_reach }} AS r
        ON i.level = r.level AND i.segment = r.segment AND i.item_id = r.item_id
    WHERE i.level IS NULL OR r.level IS NULL
)
SELECT c.lines = p.lines AND c.revenue = p.revenue AND u.n = 0 AS in_step
FROM cells AS c, purchases AS p, unmatched AS u
