SELECT max(horizon_months) FROM {{ marts.clv_customer_predictions }}
