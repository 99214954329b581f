SELECT segment, count(*) AS customers FROM {{ marts.rfm_customer_segments }}
GROUP BY segment ORDER BY min(segment_order)
