CREATE OR REPLACE TEMP TABLE {{ category_months_table }} AS
SELECT customer_id, category, date_trunc('month', order_ts)::DATE AS order_month,
       sum(amount) AS amount
FROM {{ lines_table }}
GROUP BY ALL
