-- Order dates whose stored purchase lines differ from the window's staged lines: a day added,
-- replaced, corrected or left out of the window, a line moved to another day, a product's
-- name or category resolved differently (its master changed). Compared per day by the count
-- and the sum of the hashes of every column the mart copies from the line (one streaming
-- grouping each side; the sum of UBIGINT hashes is a HUGEINT: no overflow). The two column
-- lists must stay the same: if they differed, every day would compare as changed (the table
-- rewritten whole, slower but never wrong).
WITH staged AS (
    SELECT
        CAST(order_ts AS DATE) AS order_date,
        count(*) AS lines,
        sum(hash(
            line_id, order_id, customer_id, order_ts, product_id, product_name, category,
            quantity, unit_price, amount
        )) AS line_hash_sum
    FROM {{ staging.product_lines }}
    WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end
    GROUP BY 1
),
stored AS (
    SELECT
        order_date,
        count(*) AS lines,
        sum(hash(
            line_id, order_id, customer_id, order_ts, product_id, product_name, category,
            quantity, unit_price, amount
        )) AS line_hash_sum
    FROM {{ marts.segment_product_purchases }}
    GROUP BY 1
)
SELECT order_date
FROM staged
FULL JOIN stored USING (order_date)
WHERE
    staged.lines IS DISTINCT FROM stored.lines
    OR staged.line_hash_sum IS DISTINCT FROM stored.line_hash_sum
