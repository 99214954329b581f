-- The sale lines' customers and spend over staging.transactions: the rows of
-- staging.sales_lines (its LEFT JOINs to the masters add columns, never rows), without the
-- view's two joins, which DuckDB keeps even when no joined column is read (1.3-2.1 s ->
-- 0.3-0.4 s at 10M lines).
SELECT
    (SELECT count(DISTINCT customer_id) FROM {{ staging.transactions }}) AS sales_line_customers,
    (SELECT count(DISTINCT customer_id) FROM {{ marts.customer_behaviour }}) AS distinct_customers,
    -- in DECIMAL: each customer's DOUBLE spend rounds back to its exact 4-decimal sum, where a
    -- DOUBLE total of 5.4M customers' spend (100M lines) drifted by more than a cent
    CAST(abs(
        coalesce((
            SELECT sum(CAST(spend AS DECIMAL(38, 4))) FROM {{ marts.customer_behaviour }}
        ), 0)
        - coalesce((SELECT sum(amount) FROM {{ staging.transactions }}), 0)
    ) AS DOUBLE) AS spend_difference,
    (SELECT count(*) FROM {{ marts.customer_behaviour }} WHERE unknown_demographics)
        AS unknown_demographics,
    (SELECT count(*) FROM {{ marts.customer_behaviour }} WHERE price_segment = ?)
        AS unknown_price_segment
