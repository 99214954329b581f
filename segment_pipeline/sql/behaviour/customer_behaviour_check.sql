-- The sale lines' customers and spend over staging.transactions: the rows of
-- staging.sales_lines (its LEFT JOINs to the masters add columns, never rows), without the
-- view's two joins, which DuckDB keeps even when no joined column is read (1.3-2.1 s ->
-- 0.3-0.4 s at 10M lines).
SELECT
    (SELECT count(DISTINCT customer_id) FROM {{ staging.transactions }}) AS sales_line_customers,
    (SELECT count(DISTINCT customer_id) FROM {{ marts.customer_behaviour }}) AS distinct_customers,
    abs(coalesce((SELECT sum(spend) FROM {{ marts.customer_behaviour }}), 0)
        - coalesce((SELECT CAST(sum(amount) AS DOUBLE) FROM {{ staging.transactions }}), 0))
        AS spend_difference,
    (SELECT count(*) FROM {{ marts.customer_behaviour }} WHERE unknown_demographics)
        AS unknown_demographics,
    (SELECT count(*) FROM {{ marts.customer_behaviour }} WHERE price_segment = ?)
        AS unknown_price_segment
