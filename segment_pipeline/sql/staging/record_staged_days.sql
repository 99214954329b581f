INSERT INTO {{ staging.staged_days }} (partition_date, raw, staged, returns, quarantined)
WITH days AS (SELECT unnest(?::DATE[]) AS partition_date),
r AS (
    SELECT partition_date, count(*) AS n FROM {{ raw.transactions }}
    WHERE partition_date BETWEEN ? AND ? GROUP BY 1
),
s AS (
    SELECT partition_date, count(*) AS n FROM {{ staging.transactions }}
    WHERE partition_date BETWEEN ? AND ? GROUP BY 1
),
t AS (
    SELECT partition_date, count(*) AS n FROM {{ staging.returns }}
    WHERE partition_date BETWEEN ? AND ? GROUP BY 1
),
q AS (
    SELECT partition_date, count(*) AS n FROM {{ staging.quarantine }}
    WHERE entity = 'transactions' AND partition_date BETWEEN ? AND ? GROUP BY 1
)
SELECT days.partition_date, coalesce(r.n, 0), coalesce(s.n, 0), coalesce(t.n, 0),
       coalesce(q.n, 0)
FROM days
LEFT JOIN r USING (partition_date) LEFT JOIN s USING (partition_date)
LEFT JOIN t USING (partition_date) LEFT JOIN q USING (partition_date)
WHERE r.n > 0 OR s.n > 0 OR t.n > 0 OR q.n > 0
ORDER BY days.partition_date
