SELECT rule, count(*) AS rows FROM {{ staging.quarantine }}
WHERE entity = 'transactions' AND list_contains(?::DATE[], partition_date)
GROUP BY rule ORDER BY count(*) DESC, rule
