CREATE OR REPLACE VIEW {{ staging.sales_lines }} AS
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
FROM {{ staging.transactions }} AS t
LEFT JOIN {{ staging.products }} AS p USING (product_id)
LEFT JOIN {{ staging.customers }} AS c USING (customer_id)
