SELECT model, min(not_fitted_reason) FROM {{ marts.clv_model_fit }}
WHERE NOT fitted GROUP BY model ORDER BY model
