INSERT INTO {{ staging.quarantine }}
    (entity, partition_date, source_file, source_line, rule, detail, raw_values)
SELECT ?, NULL, t.source_file, t.source_line, coalesce(t.parse_rule, r.rule),
       coalesce(CASE t.parse_rule
                    WHEN 'duplicate_customer_id' THEN 'an earlier row has this customer_id'
                    WHEN 'duplicate_product_id' THEN 'an earlier row has this product_id'
                    WHEN 'id_invisible_character'
                        THEN 'the id contains an invisible or control character'
                    ELSE r.detail END, ''),
       t.raw_values
FROM _typed_master AS t LEFT JOIN _rejected_master AS r USING (source_line)
WHERE t.parse_rule IS NOT NULL OR r.rule IS NOT NULL
ORDER BY t.source_line
