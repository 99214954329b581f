SELECT sum(revenue_share) AS revenue_share_sum, sum(customer_share) AS customer_share_sum,
       sum(customers) AS segment_customers,
       (SELECT count(*) FROM {{ marts.customer_behaviour }}) AS customers
FROM {{ marts.behavioural_segments }}
