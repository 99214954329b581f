SELECT
    count(DISTINCT customer_id) AS customers,
    count(DISTINCT order_id) AS orders,
    count(*) AS lines,
    CAST(sum(amount) AS DOUBLE) AS revenue,
    min(CAST(order_ts AS DATE)) AS first_day,
    max(CAST(order_ts AS DATE)) AS last_day,
    count(DISTINCT CAST(order_ts AS DATE)) AS sales_days,
    count(DISTINCT product_id) AS products,
    count(DISTINCT category) AS categories
FROM {{ staging.sales_lines }}
