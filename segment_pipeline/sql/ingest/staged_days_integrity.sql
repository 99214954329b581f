-- Extra rows per line id over sales and returns: for each id, (rows in transactions - 1) +
-- (rows in returns - 1) + 1 when it is in both, the same total as count(*) -
-- count(DISTINCT line_id) over the union (property test). Per table, because DuckDB 2.0 ran
-- out of memory (900 MB limit) on the union's distinct count over 100M lines, and grouped,
-- which it spills: this form passed on a 100M-line table built from ten copies of the 10M
-- lines (46 s), but the real 100M run still ran out of memory in it (docs/performance.md).
WITH sales AS NOT MATERIALIZED (
    SELECT line_id, order_id, customer_id, order_ts, product_id, quantity, unit_price, amount
    FROM {{ staging.transactions }} WHERE list_contains(?::DATE[], partition_date)
),
returned AS NOT MATERIALIZED (
    SELECT line_id, order_id, customer_id, order_ts, product_id, quantity, unit_price, amount
    FROM {{ staging.returns }} WHERE list_contains(?::DATE[], partition_date)
),
repeats AS (
    SELECT coalesce(sum(n - 1), 0) AS extra
    FROM (SELECT count(*) AS n FROM sales GROUP BY line_id HAVING count(*) > 1)
    UNION ALL
    SELECT coalesce(sum(n - 1), 0)
    FROM (SELECT count(*) AS n FROM returned GROUP BY line_id HAVING count(*) > 1)
    UNION ALL
    -- ids in both tables (the join builds on the returns' few distinct ids)
    SELECT count(DISTINCT r.line_id)
    FROM (SELECT DISTINCT line_id FROM returned) AS r
    JOIN sales AS s ON s.line_id = r.line_id
),
missing_required AS (
    SELECT count(*) AS rows_with_null
    FROM (
        SELECT * FROM sales
        UNION ALL
        SELECT * FROM returned
    )
    WHERE order_id IS NULL OR customer_id IS NULL OR order_ts IS NULL
        OR product_id IS NULL OR quantity IS NULL OR unit_price IS NULL OR amount IS NULL
)
SELECT (SELECT sum(extra) FROM repeats) AS repeated_lines, m.rows_with_null
FROM missing_required AS m
