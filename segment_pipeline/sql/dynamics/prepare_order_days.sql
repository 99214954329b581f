CREATE OR REPLACE TEMP TABLE {{ order_days_table }} AS
SELECT customer_id, order_id, CAST(order_ts AS DATE) AS order_date, sum(amount) AS amount
FROM {{ lines_table }}
GROUP BY ALL
