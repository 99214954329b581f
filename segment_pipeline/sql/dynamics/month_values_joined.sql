-- Per month and customer: the RFM layer's values over the month's window, for months whose
-- windows start on different days (a look-back window): each month joins the summed rows of
-- its window. Distinct orders are counted by grouping twice (a DISTINCT aggregate over tens of
-- millions of rows did not fit DuckDB's memory limit at 10M lines; a plain grouping spills).
-- (logic/dynamics.py creates the table from this query: temp, or in a scratch file when large.)
WITH per_order AS (
    SELECT
        m.snapshot_month, o.customer_id, o.order_id,
        min(o.order_date) AS first_date, max(o.order_date) AS last_date, sum(o.amount) AS amount
    FROM {{ months_table }} AS m
    JOIN {{ order_days_table }} AS o ON o.order_date BETWEEN m.window_start AND m.window_end
    GROUP BY m.snapshot_month, o.customer_id, o.order_id
)
SELECT
    snapshot_month, customer_id,
    min(first_date) AS first_purchase_date,
    max(last_date) AS last_purchase_date,
    count(*) AS frequency,
    sum(amount) AS monetary
FROM per_order
GROUP BY snapshot_month, customer_id
