-- The window's sale lines with their customer's segment and their product's typical price and
-- premium flag (`{{ prices }}`: the temp table of purchase_prices.sql). `{{ changed_only }}` is
-- empty for the whole table, or `AND` the condition that keeps the lines an incremental write
-- rewrites (logic/preference.py, CHANGED_PURCHASE_LINES).
SELECT
    l.line_id, l.order_id, l.customer_id, l.order_ts, CAST(l.order_ts AS DATE) AS order_date,
    r.segment, r.segment_order,
    l.product_id, l.product_name, l.category, l.quantity, l.unit_price, l.amount,
    p.typical_unit_price, p.is_premium
FROM {{ staging.product_lines }} AS l
JOIN {{ marts.rfm_customer_segments }} AS r USING (customer_id)
JOIN {{ prices }} AS p USING (product_id, category)
WHERE CAST(l.order_ts AS DATE) BETWEEN $window_start AND $window_end {{ changed_only }}
