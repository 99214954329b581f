WITH a AS (SELECT * FROM {{ marts.segment_product_summary }} WHERE segment = $group_a),
b AS (SELECT * FROM {{ marts.segment_product_summary }} WHERE segment = $group_b)
SELECT
    coalesce(a.level, b.level) AS level,
    coalesce(a.item_id, b.item_id) AS item_id,
    coalesce(a.item_name, b.item_name) AS item_name,
    coalesce(a.category, b.category) AS category,
    coalesce(a.revenue, 0) AS champions_revenue,
    coalesce(a.revenue_share, 0) AS champions_share,
    a.rank_in_segment AS champions_rank,
    coalesce(a.customers, 0) AS champions_customers,
    coalesce(b.revenue, 0) AS new_revenue,
    coalesce(b.revenue_share, 0) AS new_share,
    b.rank_in_segment AS new_rank,
    coalesce(b.customers, 0) AS new_customers,
    coalesce(a.revenue_share, 0) - coalesce(b.revenue_share, 0) AS share_difference
FROM a
FULL JOIN b ON a.level = b.level AND a.item_id = b.item_id
ORDER BY level DESC, least(coalesce(champions_rank, 9223372036854775807),
                           coalesce(new_rank, 9223372036854775807)), item_id
