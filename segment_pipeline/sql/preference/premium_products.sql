SELECT count(DISTINCT product_id) FILTER (WHERE is_premium) AS premium_products,
       count(DISTINCT product_id) AS products
FROM {{ marts.segment_product_purchases }}
