-- staging.sales_lines for the customers of a temp table only (customer_behaviour's changed
-- customers, a snapshot month's updated ones): the same columns and values as the views
-- (product_lines_view.sql, sales_lines_view.sql),
-- with the lines and the profiles filtered before the joins to the masters. DuckDB does not
-- push the filter through the views' joins: at 10M lines, a new day's 15,723 customers took
-- 1.97 s through the view and 0.80 s filtered first. test_behaviour_incremental compares the
-- two.
SELECT
    t.line_id, t.partition_date, t.order_id, t.customer_id, t.order_ts, t.product_id,
    coalesce(nullif(t.product_name, ''), p.product_name, t.product_id) AS product_name,
    coalesce(nullif(t.category, ''), p.category, 'Unknown') AS category,
    t.quantity, t.unit_price, t.amount,
    coalesce(c.gender, 'Unknown') AS gender,
    coalesce(c.age_band, 'Unknown') AS age_band,
    coalesce(c.occupation, 'Unknown') AS occupation,
    coalesce(c.marital_status, 'Unknown') AS marital_status,
    coalesce(c.city_category, 'Unknown') AS city_category
FROM (
    SELECT * FROM {{ staging.transactions }}
    WHERE customer_id IN (SELECT u.customer_id FROM {{ customers }} AS u)
) AS t
LEFT JOIN {{ staging.products }} AS p USING (product_id)
LEFT JOIN (
    SELECT * FROM {{ staging.customers }}
    WHERE customer_id IN (SELECT u.customer_id FROM {{ customers }} AS u)
) AS c USING (customer_id)
