SELECT
    segment_order, segment, rank_in_segment AS rank, item_id AS product_id,
    item_name AS product_name, category, revenue, revenue_share, customers, orders, quantity,
    is_premium
FROM {{ marts.segment_product_summary }}
WHERE level = 'product' AND rank_in_segment <= $top_n
ORDER BY segment_order, rank
