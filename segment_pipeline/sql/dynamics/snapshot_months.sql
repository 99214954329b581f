SELECT DISTINCT snapshot_month FROM {{ marts.customer_snapshots }} ORDER BY 1
