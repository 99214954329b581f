SELECT max(CAST(order_ts AS DATE)) FROM {{ staging.transactions }}
