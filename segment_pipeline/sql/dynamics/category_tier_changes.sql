SELECT b.snapshot_month AS to_month, b.category, a.price_segment AS from_tier,
       b.price_segment AS to_tier
FROM {{ marts.category_tier_snapshots }} AS a
JOIN {{ marts.category_tier_snapshots }} AS b
  ON b.snapshot_month = a.snapshot_month + INTERVAL 1 MONTH AND b.category = a.category
WHERE a.price_segment <> b.price_segment
ORDER BY to_month, category
