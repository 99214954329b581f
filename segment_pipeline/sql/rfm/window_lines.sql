SELECT count(*) FROM {{ lines_table }}
WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end
