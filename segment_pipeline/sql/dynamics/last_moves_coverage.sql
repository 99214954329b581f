SELECT
    (SELECT count(*) FROM {{ marts.customer_snapshots }}
     WHERE snapshot_month = (
         SELECT max(snapshot_month) FROM {{ marts.customer_snapshots }} AS latest
     )),
    (SELECT count(DISTINCT customer_id) FROM {{ marts.customer_last_moves }})
