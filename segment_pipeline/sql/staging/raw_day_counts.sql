SELECT partition_date, count(*) AS n FROM {{ raw.transactions }}
WHERE partition_date BETWEEN ? AND ? GROUP BY partition_date ORDER BY partition_date
