SELECT
    category,
    count(*) AS lines,
    count(DISTINCT customer_id) AS customers,
    CAST(sum(amount) AS DOUBLE) AS gross_sales,
    CAST(median(amount) AS DOUBLE) AS median_line_amount
FROM {{ staging.product_lines }}
GROUP BY category
ORDER BY category
