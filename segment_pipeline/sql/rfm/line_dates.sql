SELECT min(CAST(order_ts AS DATE)), max(CAST(order_ts AS DATE)), count(*)
FROM {{ lines_table }}
WHERE ($lo IS NULL OR CAST(order_ts AS DATE) >= $lo)
  AND ($hi IS NULL OR CAST(order_ts AS DATE) <= $hi)
