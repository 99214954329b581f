SELECT count(*), count(DISTINCT segment),
       count(*) FILTER (WHERE strategy_class IN (SELECT unnest(?::VARCHAR[])))
FROM {{ marts.segment_strategy }}
