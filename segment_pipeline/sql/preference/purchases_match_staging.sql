-- The staged sale lines of the window against segment_product_purchases: lines, revenue, and
-- whether both hold the same line ids, compared as multisets by the sum of their hashes (one
-- streaming pass each). Staging's line ids are unique (its blocking line_key_unique check),
-- so the same ids and counts mean no line lost or repeated by the joins, but for a 64-bit
-- hash collision no data can be expected to hit; a distinct count of the 10M ids cost
-- 1.3-1.7 s more at 10M lines.
WITH staged AS (
    SELECT
        count(*) AS lines,
        coalesce(sum(amount), 0) AS revenue,
        -- the sum of UBIGINT hashes is a HUGEINT: no overflow
        coalesce(sum(hash(line_id)), 0) AS id_hash_sum
    FROM {{ staging.transactions }}
    WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end
),
purchases AS (
    SELECT
        count(*) AS lines,
        coalesce(sum(amount), 0) AS revenue,
        coalesce(sum(hash(line_id)), 0) AS id_hash_sum
    FROM {{ marts.segment_product_purchases }}
)
SELECT
    s.lines AS staged_lines,
    p.lines AS purchase_rows,
    s.id_hash_sum = p.id_hash_sum AS same_line_ids,
    s.revenue AS staged_revenue,
    p.revenue AS purchase_revenue
FROM staged AS s, purchases AS p
