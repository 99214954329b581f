DELETE FROM {{ staging.quarantine }}
WHERE entity = 'transactions'
  AND partition_date BETWEEN ? AND ? AND list_contains(?::DATE[], partition_date)
