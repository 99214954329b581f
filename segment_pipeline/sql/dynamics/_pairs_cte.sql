months AS (SELECT DISTINCT snapshot_month FROM {{ marts.customer_snapshots }}),
pairs AS (
    SELECT a.snapshot_month AS from_month, b.snapshot_month AS to_month
    FROM months AS a JOIN months AS b ON b.snapshot_month = a.snapshot_month + INTERVAL 1 MONTH
)
