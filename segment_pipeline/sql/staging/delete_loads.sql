DELETE FROM {{ raw.loads }} WHERE partition_date BETWEEN ? AND ?
