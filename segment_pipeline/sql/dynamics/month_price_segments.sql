-- Per month and customer: the dominant price segment (the behaviour layer's rule,
-- DOMINANT_PRICE_SEGMENT_SQL) from the spend per tier up to the month's end, with that
-- month's category tiers, for every month of the run at once. Running sums over the months:
-- a customer's spend in a category counts from the first month that holds it (every month's
-- end is a calendar month's end), in that month's tier; when a category's tier changes from
-- one month to the next, the customer's spend in it so far moves from the old tier to the new.
-- Time linear in history, where joining the category spend of every month up to each month
-- was months x history (30-35 s of 79 s at 10M lines). The counts of summed rows per tier stand
-- for "a line in the tier": the rule's NULL, which a spend of 0 is not.
-- Run once per bucket of customers ($customer_bucket of $customer_buckets, by the hash of the
-- id: every row of a customer in one bucket), so that the running sums stay within DuckDB's
-- memory whatever the history (logic/dynamics.py, `customer_buckets`).
WITH months AS (
    SELECT
        snapshot_month,
        lag(snapshot_month) OVER (ORDER BY snapshot_month) AS previous_month
    FROM {{ months_table }}
),
tiers AS (
    -- the categories with a tier in a month (Unknown never chooses the segment)
    SELECT snapshot_month, category, price_segment
    FROM {{ month_tiers_table }}
    WHERE price_segment <> 'Unknown'
),
buckets AS (
    -- each calendar month of the data: the first month of the run that holds it
    SELECT c.order_month, min(m.snapshot_month) AS snapshot_month
    FROM (SELECT DISTINCT order_month FROM {{ category_months_table }}) AS c
    JOIN months AS m ON c.order_month <= m.snapshot_month
    GROUP BY c.order_month
),
held AS (
    -- each customer's spend per category and calendar month, in the first month that holds it
    SELECT b.snapshot_month, c.customer_id, c.category, c.amount
    FROM {{ category_months_table }} AS c
    JOIN buckets AS b USING (order_month)
    {{ customer_bucket_filter }}
),
changes AS (
    -- a category whose tier differs from the previous month's (either may be none)
    SELECT
        m.snapshot_month, u.category,
        o.price_segment AS old_segment, n.price_segment AS new_segment
    FROM months AS m
    CROSS JOIN (SELECT DISTINCT category FROM tiers) AS u
    LEFT JOIN tiers AS n ON n.snapshot_month = m.snapshot_month AND n.category = u.category
    LEFT JOIN tiers AS o ON o.snapshot_month = m.previous_month AND o.category = u.category
    WHERE m.previous_month IS NOT NULL AND n.price_segment IS DISTINCT FROM o.price_segment
),
moves AS (
    SELECT snapshot_month, category, old_segment AS price_segment, -1 AS sign
    FROM changes
    WHERE old_segment IS NOT NULL
    UNION ALL
    SELECT snapshot_month, category, new_segment AS price_segment, 1 AS sign
    FROM changes
    WHERE new_segment IS NOT NULL
),
deltas AS (
    -- a month's new spend, in the month's tiers
    SELECT h.snapshot_month, h.customer_id, t.price_segment, h.amount, 1 AS held_rows
    FROM held AS h
    JOIN tiers AS t USING (snapshot_month, category)
    UNION ALL
    -- the spend so far in a category that changed tier, out of the old and into the new
    SELECT
        v.snapshot_month, h.customer_id, v.price_segment,
        CASE WHEN v.sign > 0 THEN h.amount ELSE -h.amount END AS amount,
        v.sign AS held_rows
    FROM moves AS v
    JOIN held AS h ON h.category = v.category AND h.snapshot_month < v.snapshot_month
),
month_deltas AS (
    SELECT
        snapshot_month, customer_id,
        sum(amount) FILTER (WHERE price_segment = 'Price_High') AS high_amount,
        sum(held_rows) FILTER (WHERE price_segment = 'Price_High') AS high_rows,
        sum(amount) FILTER (WHERE price_segment = 'Price_Mid') AS mid_amount,
        sum(held_rows) FILTER (WHERE price_segment = 'Price_Mid') AS mid_rows,
        sum(amount) FILTER (WHERE price_segment = 'Price_Low') AS low_amount,
        sum(held_rows) FILTER (WHERE price_segment = 'Price_Low') AS low_rows
    FROM deltas
    GROUP BY snapshot_month, customer_id
),
customer_months AS (
    -- every month from a customer's first tiered spend on
    SELECT m.snapshot_month, c.customer_id
    FROM (
        SELECT customer_id, min(snapshot_month) AS first_month
        FROM month_deltas
        GROUP BY customer_id
    ) AS c
    JOIN months AS m ON m.snapshot_month >= c.first_month
),
so_far AS (
    SELECT
        c.snapshot_month, c.customer_id,
        sum(d.high_amount) OVER running AS high_amount,
        sum(d.high_rows) OVER running AS high_rows,
        sum(d.mid_amount) OVER running AS mid_amount,
        sum(d.mid_rows) OVER running AS mid_rows,
        sum(d.low_amount) OVER running AS low_amount,
        sum(d.low_rows) OVER running AS low_rows
    FROM customer_months AS c
    LEFT JOIN month_deltas AS d USING (snapshot_month, customer_id)
    WINDOW running AS (
        PARTITION BY c.customer_id ORDER BY c.snapshot_month
        ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW
    )
),
tier_spend AS (
    -- the exact spend per tier up to the month's end (NULL: no line in the tier)
    SELECT
        snapshot_month, customer_id,
        CASE WHEN high_rows > 0 THEN high_amount END AS high,
        CASE WHEN mid_rows > 0 THEN mid_amount END AS mid,
        CASE WHEN low_rows > 0 THEN low_amount END AS low
    FROM so_far
)
SELECT snapshot_month, customer_id, {{ dominant_price_segment }} AS price_segment
FROM tier_spend
