-- Distinct orders and customers per segment and product, and per segment and category:
-- `{{ order_lines }}` holds every line of the orders counted, `{{ customer_lines }}` every line
-- of the customers counted (both the whole segment_product_purchases for the whole table). An
-- order is counted in a cell when one of its lines is there, whoever's line it is, so an order
-- id shared by two customers of a segment is one order, as in the distinct counts over all
-- lines; counts of disjoint sets of orders (customers) add up. Counted as DISTINCT rows, a
-- grouping DuckDB can spill (count(DISTINCT ...) kept a hash table of every key per group).
WITH o AS NOT MATERIALIZED (
    SELECT segment, product_id, category, order_id FROM {{ order_lines }}
),
c AS NOT MATERIALIZED (
    SELECT segment, product_id, category, customer_id FROM {{ customer_lines }}
),
product_orders AS (
    SELECT segment, product_id AS item_id, count(*) AS orders
    FROM (SELECT DISTINCT segment, product_id, order_id FROM o)
    GROUP BY ALL
),
product_customers AS (
    SELECT segment, product_id AS item_id, count(*) AS customers
    FROM (SELECT DISTINCT segment, product_id, customer_id FROM c)
    GROUP BY ALL
),
category_orders AS (
    SELECT segment, category AS item_id, count(*) AS orders
    FROM (SELECT DISTINCT segment, category, order_id FROM o)
    GROUP BY ALL
),
category_customers AS (
    SELECT segment, category AS item_id, count(*) AS customers
    FROM (SELECT DISTINCT segment, category, customer_id FROM c)
    GROUP BY ALL
)
SELECT
    'product' AS level, segment, item_id,
    coalesce(po.orders, 0) AS orders, coalesce(pc.customers, 0) AS customers
FROM product_orders AS po
FULL JOIN product_customers AS pc USING (segment, item_id)
UNION ALL
SELECT
    'category' AS level, segment, item_id,
    coalesce(co.orders, 0) AS orders, coalesce(cc.customers, 0) AS customers
FROM category_orders AS co
FULL JOIN category_customers AS cc USING (segment, item_id)
