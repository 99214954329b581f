CREATE OR REPLACE VIEW {{ staging.product_lines }} AS
SELECT
    t.line_id, t.partition_date, t.order_id, t.customer_id, t.order_ts, t.product_id,
    coalesce(nullif(t.product_name, ''), p.product_name, t.product_id) AS product_name,
    coalesce(nullif(t.category, ''), p.category, 'Unknown') AS category,
    t.quantity, t.unit_price, t.amount
FROM {{ staging.transactions }} AS t
LEFT JOIN {{ staging.products }} AS p USING (product_id)
