-- Each product's typical unit price and premium flag, per category it is sold under, over the
-- window's sale lines: what segment_product_purchases attaches to every line (a temp table
-- both of its writes read, and what its incremental write compares the stored flags with).
-- `lines` is read twice: inlined, each read scans only the columns it needs.
WITH lines AS NOT MATERIALIZED (
    SELECT *
    FROM {{ staging.product_lines }}
    WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end
),
-- The median unit price per product from prices counted per product and price, a grouping
-- DuckDB can spill: median() over every line holds all of them in memory (100M lines: 800 MB).
-- DuckDB's own median is taken over the one or two middle prices, which gives the same value
-- (as behaviour/category_stats.sql).
price_counts AS (
    SELECT product_id, unit_price, count(*) AS n
    FROM lines
    GROUP BY product_id, unit_price
),
price_positions AS (
    SELECT
        *,
        sum(n) OVER (
            PARTITION BY product_id ORDER BY unit_price
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS upto,
        sum(n) OVER (PARTITION BY product_id) AS product_lines
    FROM price_counts
),
product_price AS (
    SELECT product_id, median(unit_price) AS typical_unit_price
    FROM price_positions
    -- the prices whose positions [upto - n, upto - 1] meet the middle ones
    WHERE upto - n <= product_lines // 2 AND upto - 1 >= (product_lines - 1) // 2
    GROUP BY product_id
),
-- each product counted once per category it is sold under
sold_as AS (SELECT DISTINCT category, product_id FROM lines),
category_threshold AS (
    SELECT s.category,
           quantile_cont(p.typical_unit_price, $premium_quantile) AS premium_threshold
    FROM sold_as AS s
    JOIN product_price AS p USING (product_id)
    GROUP BY s.category
)
SELECT
    s.product_id, s.category, p.typical_unit_price,
    coalesce(p.typical_unit_price > t.premium_threshold, false) AS is_premium
FROM sold_as AS s
JOIN product_price AS p USING (product_id)
JOIN category_threshold AS t USING (category)
