-- Customers per category, counted from (category, customer) pairs: a grouping DuckDB can
-- spill, unlike a distinct count per category. At 100M lines the 37.6M pairs still ran out
-- of memory under the default limit in one go, so the count runs in buckets of customers
-- there (logic/behaviour.py `category_stats`, by logic/memory.py `create_by_customer_buckets`:
-- a customer is in one bucket, so the buckets' counts add up).
SELECT category, count(*) AS customers
FROM (
    SELECT DISTINCT category, customer_id
    FROM {{ staging.product_lines }}
    {{ customer_bucket_filter }}
)
GROUP BY category
