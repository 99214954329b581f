-- Summed rows per calendar month of the data: order-days (what each month's window joins when
-- the months' windows start on different days) and category-months (what each month's
-- dominant price segment joins), to cut the months into batches within the memory limit.
SELECT
    order_month,
    sum(order_rows) AS order_rows,
    sum(category_rows) AS category_rows
FROM (
    SELECT
        date_trunc('month', order_date)::DATE AS order_month,
        count(*) AS order_rows,
        0 AS category_rows
    FROM {{ order_days_table }}
    GROUP BY 1
    UNION ALL
    SELECT order_month, 0 AS order_rows, count(*) AS category_rows
    FROM {{ category_months_table }}
    GROUP BY 1
)
GROUP BY 1
ORDER BY 1
