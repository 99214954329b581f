-- The finest cells of segment_product_summary: per segment, product, category, product name,
-- typical unit price and premium flag, the lines, units and revenue of the purchase lines of
-- `{{ lines }}`, each line counted `{{ weight }}` times (1, or -1 for lines an incremental write
-- deletes). Sums add up over any split of the lines, so the stored cells follow a rewrite of a
-- few lines by adding the new lines' cells and subtracting the old ones'.
SELECT
    segment, segment_order, product_id, category, product_name, typical_unit_price, is_premium,
    sum({{ weight }}) AS lines,
    sum({{ weight }} * quantity) AS quantity,
    sum({{ weight }} * amount) AS revenue
FROM {{ lines }}
GROUP BY ALL
