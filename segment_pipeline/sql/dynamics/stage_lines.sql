-- The narrow copy of the sale lines up to $last_day that the snapshots read: logic/dynamics.py
-- `stage_lines` creates it (a temp table, or a table of a scratch file for a large warehouse).
SELECT customer_id, order_id, order_ts, category, amount, age_band, gender, occupation
FROM {{ staging.sales_lines }}
WHERE CAST(order_ts AS DATE) <= CAST($last_day AS DATE)
