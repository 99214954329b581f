-- Run by logic/dynamics.py `prepare_snapshot_inputs`, in buckets of customers when the lines
-- would not fit in DuckDB's memory (`customer_bucket_filter`).
SELECT customer_id, min(age_band) AS age_band, min(gender) AS gender,
       min(occupation) AS occupation
FROM {{ lines_table }}
{{ customer_bucket_filter }}
GROUP BY customer_id
