WITH p AS (SELECT * FROM {{ marts.segment_product_purchases }}),
per_customer AS (
    SELECT
        segment, min(segment_order) AS segment_order, customer_id,
        count(DISTINCT order_id) AS orders,
        count(*) AS lines,
        sum(quantity) AS units,
        sum(amount) AS revenue,
        coalesce(sum(amount) FILTER (WHERE is_premium), 0) AS premium_revenue,
        count(DISTINCT category) AS categories,
        min(order_date) AS first_order_date,
        max(order_date) AS last_order_date
    FROM p
    GROUP BY segment, customer_id
)
SELECT
    CAST(min(segment_order) AS INTEGER) AS segment_order,
    segment,
    count(*) AS customers,
    sum(orders) AS orders,
    sum(lines) AS lines,
    sum(units) AS units,
    CAST(sum(revenue) AS DOUBLE) AS revenue,
    sum(orders) / count(*) AS orders_per_customer,
    CAST(sum(revenue) AS DOUBLE) / count(*) AS revenue_per_customer,
    CAST(sum(revenue) AS DOUBLE) / nullif(sum(orders), 0) AS aov,
    sum(units) / nullif(sum(orders), 0) AS items_per_order,
    sum(lines) / nullif(sum(orders), 0) AS lines_per_order,
    avg(categories) AS category_diversity,
    CAST(sum(premium_revenue) AS DOUBLE) / nullif(CAST(sum(revenue) AS DOUBLE), 0)
        AS premium_share,
    count(*) FILTER (WHERE orders >= 2) AS repeat_customers,
    -- consecutive gaps telescope: their mean is (last - first) / (orders - 1)
    avg(date_diff('day', first_order_date, last_order_date) / (orders - 1))
        FILTER (WHERE orders >= 2) AS mean_days_between_orders
FROM per_customer
GROUP BY segment
ORDER BY segment_order
