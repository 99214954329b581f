-- What marts.customer_last_moves_state was folded from (customer_last_moves_inputs), with the
-- rows the state holds now (a state changed since is folded again from the first month).
SELECT
    i.snapshot_month,
    i.digest,
    i.settings_digest,
    i.rows_written,
    (SELECT count(*) FROM {{ marts.customer_last_moves_state }}) AS rows_now
FROM {{ marts.customer_last_moves_inputs }} AS i
ORDER BY i.snapshot_month
