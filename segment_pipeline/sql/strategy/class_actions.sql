SELECT strategy_class, class_order, actions FROM {{ marts.strategy_summary }}
ORDER BY class_order
