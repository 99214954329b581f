-- The `{{ key }}`s (customer or order ids) with a line an incremental write of
-- segment_product_purchases changes: among the stored lines it deletes (`{{ changed }}`,
-- logic/preference.py CHANGED_PURCHASE_LINES) and the new lines it inserts (`{{ new_lines }}`).
SELECT {{ key }} FROM {{ marts.segment_product_purchases }} WHERE {{ changed }}
UNION
SELECT {{ key }} FROM {{ new_lines }}
