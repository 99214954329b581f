SELECT segment, category, round(shrunk_index, 3) AS shrunk_index,
       round(preference_index, 3) AS preference_index, customers, low_support
FROM {{ marts.segment_category_preference }}
QUALIFY row_number() OVER (PARTITION BY segment ORDER BY shrunk_index DESC, category) = 1
ORDER BY segment_order
