SELECT
    count(*) AS customers,
    count(*) FILTER (WHERE unknown_demographics) AS unknown_customers,
    count(*) FILTER (WHERE age_band = 'Unknown' AND gender = 'Unknown'
                     AND occupation = 'Unknown') AS no_profile_customers,
    coalesce(sum(spend) FILTER (WHERE unknown_demographics), 0) / nullif(sum(spend), 0)
        AS unknown_revenue_share
FROM {{ marts.customer_behaviour }}
