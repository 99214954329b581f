SELECT partition_date, source_file, rows FROM {{ raw.loads }}
WHERE partition_date BETWEEN ? AND ? ORDER BY 1
