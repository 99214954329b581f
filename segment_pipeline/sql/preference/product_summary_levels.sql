SELECT level, count(*) AS rows FROM {{ marts.segment_product_summary }}
GROUP BY level ORDER BY level
