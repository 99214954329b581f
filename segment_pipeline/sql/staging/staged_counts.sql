SELECT partition_date, raw, staged, returns, quarantined FROM {{ staging.staged_days }}
WHERE list_contains(?::DATE[], partition_date)
