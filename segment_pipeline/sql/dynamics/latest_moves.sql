SELECT previous_segment, segment, count(*) AS customers
FROM {{ marts.customer_last_moves }} WHERE segment_since = latest_month
GROUP BY ALL ORDER BY customers DESC, previous_segment, segment LIMIT 15
