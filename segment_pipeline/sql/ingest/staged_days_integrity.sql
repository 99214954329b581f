WITH lines AS (
    SELECT line_id, order_id, customer_id, order_ts, product_id, quantity, unit_price, amount
    FROM {{ staging.transactions }} WHERE list_contains(?::DATE[], partition_date)
    UNION ALL
    SELECT line_id, order_id, customer_id, order_ts, product_id, quantity, unit_price, amount
    FROM {{ staging.returns }} WHERE list_contains(?::DATE[], partition_date)
)
SELECT count(*) - count(DISTINCT line_id),
       count(*) FILTER (WHERE order_id IS NULL OR customer_id IS NULL OR order_ts IS NULL
                        OR product_id IS NULL OR quantity IS NULL OR unit_price IS NULL
                        OR amount IS NULL)
FROM lines
