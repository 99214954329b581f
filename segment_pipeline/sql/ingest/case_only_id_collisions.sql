WITH ids AS (
    SELECT DISTINCT 'customer_id' AS kind, customer_id AS id FROM {{ staging.transactions }}
    UNION
    SELECT DISTINCT 'product_id', product_id FROM {{ staging.transactions }}
),
day_ids AS (
    SELECT DISTINCT 'customer_id' AS kind, lower(customer_id) AS folded
    FROM {{ staging.transactions }} WHERE list_contains(?::DATE[], partition_date)
    UNION
    SELECT DISTINCT 'product_id', lower(product_id)
    FROM {{ staging.transactions }} WHERE list_contains(?::DATE[], partition_date)
)
SELECT ids.kind, list(ids.id ORDER BY ids.id) AS ids
FROM ids JOIN day_ids ON ids.kind = day_ids.kind AND lower(ids.id) = day_ids.folded
GROUP BY ids.kind, day_ids.folded
HAVING count(*) > 1
ORDER BY ids.kind, min(ids.id)
