-- A sample of $n customers of the stored month $month besides the update's own customers,
-- the same for the same $seed: the kept customers a month updated by a new day recomputes
-- for its check.
SELECT customer_id, true AS sampled
FROM {{ marts.customer_snapshots }}
WHERE
    snapshot_month = $month
    AND customer_id NOT IN (SELECT c.customer_id FROM {{ customers }} AS c)
ORDER BY hash(customer_id, $seed), customer_id
LIMIT $n
