-- Summed order-days per calendar month of the data: what each month's window joins when the
-- months' windows start on different days, to cut the months into batches within the memory
-- limit.
SELECT date_trunc('month', order_date)::DATE AS order_month, count(*) AS order_rows
FROM {{ order_days_table }}
GROUP BY 1
ORDER BY 1
