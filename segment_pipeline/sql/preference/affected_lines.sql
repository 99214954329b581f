-- Every stored purchase line of the affected customers (`{{ customers }}`) or orders
-- (`{{ orders }}`) before an incremental write, with what the summary's cells and reach read
-- and three flags: of an affected order, of an affected customer, and changed (deleted by the
-- write: `{{ changed }}`). One scan of the table gives the affected lines before the write, the
-- deleted lines' cells, and with the new lines the affected lines after it.
SELECT
    line_id, segment, segment_order, product_id, category, product_name, typical_unit_price,
    is_premium, quantity, amount, order_id, customer_id,
    order_id IN (SELECT order_id FROM {{ orders }}) AS of_affected_order,
    customer_id IN (SELECT customer_id FROM {{ customers }}) AS of_affected_customer,
    {{ changed }} AS is_changed
FROM {{ marts.segment_product_purchases }}
WHERE
    order_id IN (SELECT order_id FROM {{ orders }})
    OR customer_id IN (SELECT customer_id FROM {{ customers }})
