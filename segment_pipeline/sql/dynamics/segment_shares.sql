SELECT snapshot_month, segment, min(segment_order) AS segment_order, count(*) AS customers
FROM {{ marts.customer_snapshots }}
GROUP BY snapshot_month, segment
ORDER BY snapshot_month, segment_order
