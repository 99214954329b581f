-- Per category: lines, sales and the median line amount, in groupings DuckDB can spill to
-- disk: a median over every line holds all of them in memory (at 10M lines under an 86 MiB
-- limit, a tenth of the default, it ran out). The lines are counted per category and amount
-- and the median is DuckDB's own, taken over the one or two middle amounts (quantile_cont
-- interpolates between the values at 0-based positions floor and ceil of (lines - 1) / 2:
-- the same two values give the same median; as dynamics/month_category_stats.sql). The
-- customers per category are counted apart (behaviour/category_customers.sql).
WITH amounts AS (
    SELECT category, amount, count(*) AS n
    FROM {{ staging.product_lines }}
    GROUP BY category, amount
),
positioned AS (
    SELECT
        *,
        sum(n) OVER (
            PARTITION BY category ORDER BY amount
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS upto,
        sum(n) OVER (PARTITION BY category) AS lines,
        sum(amount * n) OVER (PARTITION BY category) AS gross_sales
    FROM amounts
),
medians AS (
    SELECT
        category,
        CAST(any_value(lines) AS BIGINT) AS lines,
        CAST(any_value(gross_sales) AS DOUBLE) AS gross_sales,
        CAST(median(amount) AS DOUBLE) AS median_line_amount
    FROM positioned
    -- the amounts whose positions [upto - n, upto - 1] meet the middle ones
    WHERE upto - n <= lines // 2 AND upto - 1 >= (lines - 1) // 2
    GROUP BY category
)
SELECT category, lines, gross_sales, median_line_amount
FROM medians
ORDER BY category
