SELECT DISTINCT window_start, window_end, as_of FROM {{ marts.rfm_customer_segments }}
