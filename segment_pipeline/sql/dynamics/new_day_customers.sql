-- The customers with a sale line on the days `$days`: those whose rows a month updated by
-- new days recomputes (`sampled`: false, they are not the check's sample).
SELECT DISTINCT customer_id, false AS sampled
FROM {{ staging.transactions }}
WHERE list_contains($days::DATE[], partition_date)
