-- Products (per category they are sold under) whose stored lines carry another typical unit
-- price or premium flag than `{{ prices }}` (purchase_prices.sql, computed now) gives them.
SELECT stored.product_id, stored.category
FROM (
    SELECT DISTINCT product_id, category, typical_unit_price, is_premium
    FROM {{ marts.segment_product_purchases }}
) AS stored
LEFT JOIN {{ prices }} AS p USING (product_id, category)
WHERE
    p.typical_unit_price IS DISTINCT FROM stored.typical_unit_price
    OR p.is_premium IS DISTINCT FROM stored.is_premium
