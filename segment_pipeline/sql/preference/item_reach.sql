-- Distinct orders and customers per segment and product, and per segment and category: the
-- four placeholders below give each count (segment, item_id, n) by reach_counts.sql, over the
-- lines or summed over buckets of them. The orders are counted over every line of the orders
-- counted, the customers over every line of the customers counted (both the whole
-- segment_product_purchases for the whole table). An order is counted in a cell when one of its
-- lines is there, whoever's line it is, so an order id shared by two customers of a segment is
-- one order, as in the distinct counts over all lines; counts of disjoint sets of orders
-- (customers) add up.
WITH product_orders AS ({{ product_order_counts }}),
product_customers AS ({{ product_customer_counts }}),
category_orders AS ({{ category_order_counts }}),
category_customers AS ({{ category_customer_counts }})
SELECT
    'product' AS level, segment, item_id,
    coalesce(po.n, 0) AS orders, coalesce(pc.n, 0) AS customers
FROM product_orders AS po
FULL JOIN product_customers AS pc USING (segment, item_id)
UNION ALL
SELECT
    'category' AS level, segment, item_id,
    coalesce(co.n, 0) AS orders, coalesce(cc.n, 0) AS customers
FROM category_orders AS co
FULL JOIN category_customers AS cc USING (segment, item_id)
