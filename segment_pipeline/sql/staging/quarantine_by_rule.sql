SELECT entity, rule, count(*) FROM {{ staging.quarantine }} GROUP BY ALL ORDER BY 1, 3 DESC, 2
