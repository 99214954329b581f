WITH shared AS (
    SELECT order_id
    -- the subquery below is its own scope: sqlfluff sees its table alias as a duplicate
    FROM {{ staging.transactions }}  -- noqa: AL04
    WHERE order_id IN (
        SELECT order_id FROM {{ staging.transactions }}
        WHERE list_contains(?::DATE[], partition_date)
    )
    GROUP BY order_id
    HAVING min(customer_id) <> max(customer_id)
)
SELECT order_id, list(DISTINCT customer_id ORDER BY customer_id) AS customers
FROM {{ staging.transactions }}
WHERE order_id IN (SELECT order_id FROM shared)
GROUP BY order_id
ORDER BY order_id
