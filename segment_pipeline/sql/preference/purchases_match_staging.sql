SELECT
    (SELECT count(*) FROM {{ staging.transactions }}
      WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end) AS staged_lines,
    (SELECT count(*) FROM {{ marts.segment_product_purchases }}) AS purchase_rows,
    (SELECT count(DISTINCT line_id) FROM {{ marts.segment_product_purchases }}) AS distinct_lines,
    (SELECT coalesce(sum(amount), 0) FROM {{ staging.transactions }}
      WHERE CAST(order_ts AS DATE) BETWEEN $window_start AND $window_end) AS staged_revenue,
    (SELECT coalesce(sum(amount), 0) FROM {{ marts.segment_product_purchases }}) AS purchase_revenue
