SELECT
    occupation,
    count(DISTINCT customer_id) AS customers,
    count(*) AS lines,
    CAST(sum(amount) AS DOUBLE) AS gross_sales,
    avg(ln(1 + CAST(amount AS DOUBLE))) AS mean_log1p_amount
FROM {{ staging.sales_lines }}
GROUP BY occupation
ORDER BY occupation
