WITH lines AS (
    SELECT l.customer_id, l.order_id, l.amount, l.age_band, l.gender, l.occupation,
           o.occupation_group, p.price_segment
    FROM {{ staging.sales_lines }} AS l
    JOIN {{ marts.occupation_groups }} AS o USING (occupation)
    JOIN {{ marts.category_price_segments }} AS p USING (category)
),
by_tier AS (
    SELECT customer_id, price_segment, sum(amount) AS spend
    FROM lines
    WHERE price_segment <> 'Unknown'
    GROUP BY customer_id, price_segment
),
dominant AS (
    SELECT customer_id, price_segment
    FROM by_tier
    QUALIFY row_number() OVER (
        PARTITION BY customer_id
        ORDER BY spend DESC,
                 CASE price_segment WHEN 'Price_High' THEN 3 WHEN 'Price_Mid' THEN 2
                                    ELSE 1 END DESC
    ) = 1
),
customers AS (
    SELECT
        customer_id,
        -- a customer has one profile, so these are constant per customer
        min(age_band) AS age_band,
        min(gender) AS gender,
        min(occupation) AS occupation,
        min(occupation_group) AS occupation_group,
        CAST(coalesce(sum(amount) FILTER (WHERE price_segment = 'Price_Low'), 0) AS DOUBLE)
            AS spend_price_low,
        CAST(coalesce(sum(amount) FILTER (WHERE price_segment = 'Price_Mid'), 0) AS DOUBLE)
            AS spend_price_mid,
        CAST(coalesce(sum(amount) FILTER (WHERE price_segment = 'Price_High'), 0) AS DOUBLE)
            AS spend_price_high,
        CAST(coalesce(sum(amount) FILTER (WHERE price_segment = 'Unknown'), 0) AS DOUBLE)
            AS spend_unknown_category,
        count(*) AS lines,
        count(DISTINCT order_id) AS orders,
        CAST(sum(amount) AS DOUBLE) AS spend
    FROM lines
    GROUP BY customer_id
)
SELECT
    c.customer_id, c.age_band, c.gender, c.occupation, c.occupation_group,
    coalesce(d.price_segment, 'Unknown') AS price_segment,
    c.spend_price_low, c.spend_price_mid, c.spend_price_high, c.spend_unknown_category,
    c.lines, c.orders, c.spend,
    (c.age_band = 'Unknown' OR c.gender = 'Unknown' OR c.occupation = 'Unknown')
        AS unknown_demographics
FROM customers AS c
LEFT JOIN dominant AS d USING (customer_id)
ORDER BY c.customer_id
