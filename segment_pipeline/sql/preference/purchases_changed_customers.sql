-- Customers whose stored purchase lines carry another segment (or display position) than
-- marts.rfm_customer_segments gives them now, or none (no longer in the RFM table). A
-- customer new to the window comes with new lines, which purchases_changed_days finds.
SELECT stored.customer_id
FROM (
    SELECT DISTINCT customer_id, segment, segment_order
    FROM {{ marts.segment_product_purchases }}
) AS stored
LEFT JOIN {{ marts.rfm_customer_segments }} AS r USING (customer_id)
WHERE
    r.segment IS DISTINCT FROM stored.segment
    OR r.segment_order IS DISTINCT FROM stored.segment_order
