SELECT
    (SELECT count(DISTINCT customer_id) FROM {{ staging.sales_lines }}) AS sales_line_customers,
    (SELECT count(DISTINCT customer_id) FROM {{ marts.customer_behaviour }}) AS distinct_customers,
    abs(coalesce((SELECT sum(spend) FROM {{ marts.customer_behaviour }}), 0)
        - coalesce((SELECT CAST(sum(amount) AS DOUBLE) FROM {{ staging.sales_lines }}), 0))
        AS spend_difference,
    (SELECT count(*) FROM {{ marts.customer_behaviour }} WHERE unknown_demographics)
        AS unknown_demographics,
    (SELECT count(*) FROM {{ marts.customer_behaviour }} WHERE price_segment = ?)
        AS unknown_price_segment
