-- The stored distinct orders and customers per segment and item, plus those of the affected
-- orders and customers after an incremental write (`{{ after }}`), minus theirs before it
-- (`{{ before }}`): the orders and customers without a changed line are in the same cells
-- before and after, so only the affected ones' counts move (item_reach.sql).
SELECT level, segment, item_id, sum(orders) AS orders, sum(customers) AS customers
FROM (
    SELECT level, segment, item_id, orders, customers
    FROM {{ marts.segment_product_summary_reach }}
    UNION ALL
    SELECT level, segment, item_id, orders, customers FROM {{ after }}
    UNION ALL
    SELECT level, segment, item_id, -orders AS orders, -customers AS customers FROM {{ before }}
)
GROUP BY ALL
HAVING sum(orders) <> 0 OR sum(customers) <> 0
