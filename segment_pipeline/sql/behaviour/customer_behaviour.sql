WITH lines AS (
    SELECT l.customer_id, l.order_id, l.amount, l.age_band, l.gender, l.occupation,
           o.occupation_group, p.price_segment
    FROM {{ staging.sales_lines }} AS l
    JOIN {{ marts.occupation_groups }} AS o USING (occupation)
    JOIN {{ marts.category_price_segments }} AS p USING (category)
    -- empty, or one bucket of customers when the snapshots' check runs it in buckets
    {{ customer_bucket_filter }}
),
customers AS (
    SELECT
        customer_id,
        -- a customer has one profile, so these are constant per customer
        min(age_band) AS age_band,
        min(gender) AS gender,
        min(occupation) AS occupation,
        min(occupation_group) AS occupation_group,
        -- the exact spend per price tier (NULL: no line in the tier) for the dominant tier
        sum(amount) FILTER (WHERE price_segment = 'Price_High') AS high,
        sum(amount) FILTER (WHERE price_segment = 'Price_Mid') AS mid,
        sum(amount) FILTER (WHERE price_segment = 'Price_Low') AS low,
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
    -- the largest exact spend per tier; a tie goes to the higher tier (behaviour.py)
    {{ dominant_price_segment }} AS price_segment,
    CAST(coalesce(c.low, 0) AS DOUBLE) AS spend_price_low,
    CAST(coalesce(c.mid, 0) AS DOUBLE) AS spend_price_mid,
    CAST(coalesce(c.high, 0) AS DOUBLE) AS spend_price_high,
    c.spend_unknown_category,
    c.lines, c.orders, c.spend,
    (c.age_band = 'Unknown' OR c.gender = 'Unknown' OR c.occupation = 'Unknown')
        AS unknown_demographics
FROM customers AS c
ORDER BY c.customer_id
