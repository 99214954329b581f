SELECT count(*) FROM {{ marts.clv_model_inputs }} WHERE frequency > 0
