-- The kept customers a month updated by a new day recomputed for its check (`sampled` among
-- the update's customers): how many, and how many of them have a recomputed row that differs
-- from their stored row of $month in a column that does not depend on the other customers
-- (every column but the scores).
WITH sampled AS (
    SELECT u.customer_id FROM {{ customers }} AS u WHERE u.sampled
),

recomputed_rows AS (
    SELECT {{ columns }} FROM {{ recomputed }}
    WHERE customer_id IN (SELECT s.customer_id FROM sampled AS s)
),

stored_rows AS (
    SELECT {{ columns }} FROM {{ marts.customer_snapshots }}
    WHERE
        snapshot_month = $month
        AND customer_id IN (SELECT s.customer_id FROM sampled AS s)
),

differing AS (
    SELECT d.customer_id
    FROM (
        SELECT * FROM recomputed_rows
        EXCEPT ALL
        SELECT * FROM stored_rows
    ) AS d
    UNION
    SELECT d.customer_id
    FROM (
        SELECT * FROM stored_rows
        EXCEPT ALL
        SELECT * FROM recomputed_rows
    ) AS d
)

SELECT
    (SELECT count(*) FROM sampled) AS sampled,
    (SELECT count(*) FROM differing) AS differing
