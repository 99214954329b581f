-- Per month and category, as of the month's end: the behaviour layer's CATEGORY_STATS_SQL for
-- every month of the run in one pass. The lines are first counted per calendar month, category
-- and amount, and each month sums the counts up to it: months x distinct amounts instead of
-- months x lines. The median is DuckDB's own, taken over the one or two middle amounts
-- (quantile_cont interpolates between the values at 0-based positions floor and ceil of
-- (lines - 1) / 2, so the same two values give the same median).
WITH amounts AS (
    SELECT
        date_trunc('month', order_ts)::DATE AS order_month, category, amount,
        count(*) AS n
    FROM {{ lines_table }}
    GROUP BY ALL
),
so_far AS (
    SELECT m.snapshot_month, a.category, a.amount, sum(a.n) AS n
    FROM {{ months_table }} AS m
    JOIN amounts AS a ON a.order_month <= m.snapshot_month
    GROUP BY ALL
),
positioned AS (
    SELECT
        *,
        sum(n) OVER (
            PARTITION BY snapshot_month, category ORDER BY amount
            ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
        ) AS upto,
        sum(n) OVER (PARTITION BY snapshot_month, category) AS lines,
        sum(amount * n) OVER (PARTITION BY snapshot_month, category) AS gross_sales
    FROM so_far
),
medians AS (
    SELECT
        snapshot_month, category,
        CAST(any_value(lines) AS BIGINT) AS lines,
        CAST(any_value(gross_sales) AS DOUBLE) AS gross_sales,
        CAST(median(amount) AS DOUBLE) AS median_line_amount
    FROM positioned
    -- the amounts whose positions [upto - n, upto - 1] meet the middle ones
    WHERE upto - n <= lines // 2 AND upto - 1 >= (lines - 1) // 2
    GROUP BY snapshot_month, category
),
customers AS (
    SELECT m.snapshot_month, f.category, CAST(sum(f.customers) AS BIGINT) AS customers
    FROM {{ months_table }} AS m
    JOIN (
        SELECT category, first_month, count(*) AS customers
        FROM (
            SELECT customer_id, category, min(order_month) AS first_month
            FROM {{ category_months_table }}
            GROUP BY customer_id, category
        )
        GROUP BY category, first_month
    ) AS f ON f.first_month <= m.snapshot_month
    GROUP BY ALL
)
SELECT s.snapshot_month, s.category, s.lines, c.customers, s.gross_sales, s.median_line_amount
FROM medians AS s
JOIN customers AS c USING (snapshot_month, category)
ORDER BY s.snapshot_month, s.category
