SELECT segment, revenue_share FROM {{ marts.behavioural_segments }}
ORDER BY sales_rank LIMIT 1
