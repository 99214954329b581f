DELETE FROM {{ target }}
WHERE partition_date BETWEEN ? AND ? AND list_contains(?::DATE[], partition_date)
