SELECT
    (SELECT count(*) FROM {{ marts.rfm_customer_segments }}) AS rfm_customers,
    (SELECT count(*) FROM {{ marts.clv_model_inputs }}) AS rows,
    (SELECT count(DISTINCT customer_id) FROM {{ marts.clv_model_inputs }}) AS distinct_customers,
    (SELECT count(*) FROM {{ marts.clv_model_inputs }}
      WHERE frequency < 0 OR recency < 0 OR recency > "T"
         OR (frequency = 0) <> (recency = 0 AND monetary = 0)
         OR NOT EXISTS (SELECT 1 FROM {{ marts.rfm_customer_segments }} AS r
                        WHERE r.customer_id = clv_model_inputs.customer_id)) AS bad_rows
