-- The affected customers' and orders' lines after an incremental write, without reading the
-- table again: their stored lines the write keeps (`{{ before }}`, not changed) and the new
-- lines (`{{ new_lines }}`, every one of an affected customer and order by definition).
SELECT
    line_id, segment, segment_order, product_id, category, product_name, typical_unit_price,
    is_premium, quantity, amount, order_id, customer_id,
    of_affected_order, of_affected_customer, is_changed
FROM {{ before }}
WHERE NOT is_changed
UNION ALL
SELECT
    line_id, segment, segment_order, product_id, category, product_name, typical_unit_price,
    is_premium, quantity, amount, order_id, customer_id,
    TRUE AS of_affected_order, TRUE AS of_affected_customer, FALSE AS is_changed
FROM {{ new_lines }}
