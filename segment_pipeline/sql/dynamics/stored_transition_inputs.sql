-- Per pair recorded in segment_transitions_inputs: the digests it was computed from, the rows
-- it wrote, and the rows segment_transitions holds for it now (a pair whose rows were removed
-- or partly removed since is recomputed).
WITH held AS (
    SELECT from_month, count(*) AS rows_now
    FROM {{ marts.segment_transitions }}
    GROUP BY from_month
)
SELECT i.from_month, i.from_digest, i.to_digest, i.settings_digest, i.rows_written,
       coalesce(h.rows_now, 0) AS rows_now
FROM {{ marts.segment_transitions_inputs }} AS i
LEFT JOIN held AS h USING (from_month)
