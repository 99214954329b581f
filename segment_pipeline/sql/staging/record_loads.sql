INSERT INTO {{ raw.loads }} (partition_date, source_file, rows)
SELECT partition_date,
       CASE WHEN count(DISTINCT source_file) = 1 THEN min(source_file)
            ELSE min(source_file) || ' (+' || (count(DISTINCT source_file) - 1) || ' more)' END,
       count(*)
FROM {{ raw.transactions }}
WHERE partition_date BETWEEN ? AND ?
GROUP BY partition_date
