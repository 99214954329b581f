-- Per month and occupation, as of the month's end: the behaviour layer's OCCUPATION_STATS_SQL
-- for every month of the run in one pass (sums per calendar month, then each month sums the
-- months up to it). The mean of ln(1 + amount) is a sum over a count, as avg() computes it,
-- in another order of addition (within a few units in the last place).
WITH per_month AS (
    SELECT
        date_trunc('month', order_ts)::DATE AS order_month, occupation,
        count(*) AS lines, sum(amount) AS amount,
        sum(ln(1 + CAST(amount AS DOUBLE))) AS log1p_amount
    FROM {{ lines_table }}
    GROUP BY ALL
),
first_months AS (
    SELECT occupation, first_month, count(*) AS customers
    FROM (
        SELECT customer_id, occupation, min(date_trunc('month', order_ts)::DATE) AS first_month
        FROM {{ lines_table }}
        GROUP BY customer_id, occupation
    )
    GROUP BY occupation, first_month
),
sums AS (
    SELECT
        m.snapshot_month, p.occupation,
        CAST(sum(p.lines) AS BIGINT) AS lines,
        CAST(sum(p.amount) AS DOUBLE) AS gross_sales,
        sum(p.log1p_amount) / sum(p.lines) AS mean_log1p_amount
    FROM {{ months_table }} AS m
    JOIN per_month AS p ON p.order_month <= m.snapshot_month
    GROUP BY ALL
),
customers AS (
    SELECT m.snapshot_month, f.occupation, CAST(sum(f.customers) AS BIGINT) AS customers
    FROM {{ months_table }} AS m
    JOIN first_months AS f ON f.first_month <= m.snapshot_month
    GROUP BY ALL
)
SELECT s.snapshot_month, s.occupation, c.customers, s.lines, s.gross_sales, s.mean_log1p_amount
FROM sums AS s
JOIN customers AS c USING (snapshot_month, occupation)
ORDER BY s.snapshot_month, s.occupation
