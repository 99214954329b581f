SELECT
    (SELECT count(DISTINCT customer_id) FROM {{ staging.transactions }}
      WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end) AS window_customers,
    (SELECT count(*) FROM {{ marts.rfm_customer_segments }}) AS rows,
    (SELECT count(DISTINCT customer_id) FROM {{ marts.rfm_customer_segments }})
        AS distinct_customers,
    (SELECT count(*) FROM {{ marts.rfm_customer_segments }}
      WHERE segment IS NULL OR list_position($segments::VARCHAR[], segment) IS NULL
         OR r_score NOT BETWEEN 1 AND 5 OR f_score NOT BETWEEN 1 AND 5
         OR m_score NOT BETWEEN 1 AND 5) AS bad_rows
