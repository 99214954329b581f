SELECT order_month, sum(n) AS n FROM (
    SELECT date_trunc('month', order_date)::DATE AS order_month, count(*) AS n
    FROM {{ order_days_table }} GROUP BY 1
    UNION ALL
    SELECT order_month, count(*) AS n FROM {{ category_months_table }} GROUP BY 1
) GROUP BY 1 ORDER BY 1
