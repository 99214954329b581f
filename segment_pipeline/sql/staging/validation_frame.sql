SELECT line_id, partition_date, order_id, customer_id, order_ts, product_id, product_name,
       category, quantity, CAST(unit_price AS DOUBLE) AS unit_price,
       CAST(amount AS DOUBLE) AS amount
FROM _typed WHERE parse_rule IS NULL AND quantity {{ sign }}
