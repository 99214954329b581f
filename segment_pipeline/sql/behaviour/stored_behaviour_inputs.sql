-- What marts.customer_behaviour was computed from (customer_behaviour_inputs), with the rows
-- the table holds now (a table changed since is written whole again).
SELECT
    i.partition_date,
    i.digest,
    i.settings_digest,
    i.rows_written,
    (SELECT count(*) FROM {{ marts.customer_behaviour }}) AS rows_now
FROM {{ marts.customer_behaviour_inputs }} AS i
ORDER BY i.partition_date
