-- For each quantile level (`?`, DOUBLE[]): the two line amounts quantile_cont interpolates
-- between and the fraction between them, from the amounts counted per value. quantile_cont over
-- every line holds all of them in memory (100M lines: 800 MB of doubles, over the default
-- limit); the counts are a grouping DuckDB can spill. As quantile_cont: rank = (lines - 1) *
-- level in DOUBLE, between the 0-based ranks floor(rank) and ceil(rank) of the sorted amounts.
WITH counted AS (
    SELECT CAST(amount AS DOUBLE) AS amount, count(*) AS n
    FROM {{ staging.transactions }}
    GROUP BY 1
),
positioned AS (
    SELECT
        amount,
        n,
        sum(n) OVER (ORDER BY amount ROWS BETWEEN UNBOUNDED PRECEDING AND CURRENT ROW) AS upto
    FROM counted
),
ranks AS (
    SELECT
        l.level,
        CAST(t.lines - 1 AS DOUBLE) * l.level AS rank_position
    FROM unnest(?::DOUBLE[]) AS l (level)
    CROSS JOIN (SELECT sum(n) AS lines FROM counted) AS t
    WHERE t.lines > 0
)
SELECT
    r.level,
    lo.amount AS lo,
    hi.amount AS hi,
    r.rank_position - floor(r.rank_position) AS fraction
FROM ranks AS r
-- the amount whose positions [upto - n, upto - 1] hold each of the two ranks
INNER JOIN positioned AS lo
    ON floor(r.rank_position) BETWEEN lo.upto - lo.n AND lo.upto - 1
INNER JOIN positioned AS hi
    ON ceil(r.rank_position) BETWEEN hi.upto - hi.n AND hi.upto - 1
ORDER BY r.level
