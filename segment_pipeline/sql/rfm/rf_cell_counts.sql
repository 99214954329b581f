SELECT r_score, f_score, count(*) AS customers
FROM {{ marts.rfm_customer_segments }}
GROUP BY r_score, f_score
