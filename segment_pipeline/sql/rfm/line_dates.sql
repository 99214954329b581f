SELECT min(CAST(order_ts AS DATE)), max(CAST(order_ts AS DATE)), count(*)
FROM {{ staging.sales_lines }}
WHERE ($lo IS NULL OR CAST(order_ts AS DATE) >= $lo)
  AND ($hi IS NULL OR CAST(order_ts AS DATE) <= $hi)
