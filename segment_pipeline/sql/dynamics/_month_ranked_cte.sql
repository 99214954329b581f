-- The RFM layer's ranks (rfm/_ranked_cte.sql: rank() per month) from each value's count: a
-- value's rank is 1 + the customers of the month before it in the order, a running sum over
-- the month's distinct values. Three sorts of every customer row of every month (and their
-- spilling) become three groupings and a window over the distinct values (10M lines, 12
-- months: the scoring query 16.8 s -> 12.5 s, the same rows; docs/performance.md). `valued`
-- is read four times: all_months_snapshot.sql materializes it. Its values are never NULL
-- (every customer of a window has a line in it), so the joins below keep every row; a row
-- lost would fail the check one_row_per_customer.
recency_counts AS (
    SELECT snapshot_month, recency_days, count(*) AS n
    FROM valued
    GROUP BY snapshot_month, recency_days
),
frequency_counts AS (
    SELECT snapshot_month, frequency, count(*) AS n
    FROM valued
    GROUP BY snapshot_month, frequency
),
monetary_counts AS (
    SELECT snapshot_month, monetary, count(*) AS n
    FROM valued
    GROUP BY snapshot_month, monetary
),
recency_ranks AS (
    -- recency ranks in descending order (rank() ORDER BY recency_days DESC)
    SELECT
        snapshot_month, recency_days,
        1 + coalesce(sum(n) OVER (
            PARTITION BY snapshot_month ORDER BY recency_days DESC
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS r_rank
    FROM recency_counts
),
frequency_ranks AS (
    SELECT
        snapshot_month, frequency,
        1 + coalesce(sum(n) OVER (
            PARTITION BY snapshot_month ORDER BY frequency
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS f_rank
    FROM frequency_counts
),
monetary_ranks AS (
    SELECT
        snapshot_month, monetary,
        1 + coalesce(sum(n) OVER (
            PARTITION BY snapshot_month ORDER BY monetary
            ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING
        ), 0) AS m_rank
    FROM monetary_counts
),
ranked AS (
    SELECT v.*, r.r_rank, f.f_rank, m.m_rank
    FROM valued AS v
    JOIN recency_ranks AS r USING (snapshot_month, recency_days)
    JOIN frequency_ranks AS f USING (snapshot_month, frequency)
    JOIN monetary_ranks AS m USING (snapshot_month, monetary)
)
