INSERT INTO {{ staging.quarantine }}
    (entity, partition_date, source_file, source_line, rule, detail, raw_values)
SELECT 'transactions', t.partition_date, t.source_file, t.source_line,
       coalesce(t.parse_rule, r.rule),
       coalesce(CASE WHEN t.parse_rule IS NOT NULL THEN t.parse_detail
                     WHEN r.rule = 'order_ts_on_partition_day'
                         THEN 'order_ts=' || t.order_ts || ', partition_date=' || t.partition_date
                     WHEN r.rule = 'amount_is_quantity_times_price'
                         THEN 'quantity=' || t.quantity || ', unit_price=' || t.unit_price
                              || ', amount=' || t.amount
                     ELSE r.detail END, ''),
       CAST(to_json(struct_pack(
        order_id := t.raw_order_id, customer_id := t.raw_customer_id,
        order_ts := t.raw_order_ts, product_id := t.raw_product_id,
        quantity := t.raw_quantity, unit_price := t.raw_unit_price,
        product_name := t.raw_product_name, category := t.raw_category, extra := t.extra
    )) AS VARCHAR)
FROM _typed AS t LEFT JOIN _rejected AS r USING (line_id)
WHERE t.parse_rule IS NOT NULL OR r.rule IS NOT NULL
ORDER BY t.partition_date, t.source_line
