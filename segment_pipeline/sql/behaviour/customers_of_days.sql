-- The customers with a sale line on the given days ($days): the rows a new day changes.
SELECT DISTINCT customer_id
FROM {{ staging.transactions }}
WHERE list_contains($days, partition_date)
