CREATE OR REPLACE TEMP TABLE {{ lines_table }} AS
SELECT customer_id, order_id, order_ts, category, amount, age_band, gender, occupation
FROM {{ staging.sales_lines }}
WHERE CAST(order_ts AS DATE) <= CAST($last_day AS DATE)
