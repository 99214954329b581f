SELECT max(CAST(order_ts AS DATE)) FROM {{ staging.sales_lines }}
