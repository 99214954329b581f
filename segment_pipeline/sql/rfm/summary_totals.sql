SELECT sum(customer_share), sum(revenue_share), sum(customers),
       (SELECT count(*) FROM {{ marts.rfm_customer_segments }})
FROM {{ marts.rfm_summary }}
