DELETE FROM {{ raw.transactions }} WHERE partition_date BETWEEN ? AND ?
