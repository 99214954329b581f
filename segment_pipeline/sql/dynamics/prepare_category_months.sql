-- Run by logic/dynamics.py `prepare_snapshot_inputs`, in buckets of customers when the lines
-- would not fit in DuckDB's memory (`customer_bucket_filter`).
SELECT customer_id, category, date_trunc('month', order_ts)::DATE AS order_month,
       sum(amount) AS amount
FROM {{ lines_table }}
{{ customer_bucket_filter }}
GROUP BY ALL
