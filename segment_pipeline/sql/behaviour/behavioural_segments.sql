WITH seg AS (
    SELECT
        age_band || ' | ' || gender || ' | ' || occupation_group || ' | ' || price_segment
            AS segment,
        age_band, gender, occupation_group, price_segment,
        count(*) AS customers,
        sum(lines) AS transactions,
        sum(orders) AS orders,
        -- summed as the exact decimals the customers' spend came from: a sum of doubles
        -- depends on the order rows arrive in, and the table must not differ between runs
        CAST(sum(CAST(spend AS DECIMAL(38, 4))) AS DOUBLE) AS gross_sales
    FROM {{ marts.customer_behaviour }}
    GROUP BY age_band, gender, occupation_group, price_segment
),
totals AS (
    SELECT sum(customers) AS customers,
           CAST(sum(CAST(gross_sales AS DECIMAL(38, 4))) AS DOUBLE) AS gross_sales
    FROM seg
)
SELECT
    seg.segment, seg.age_band, seg.gender, seg.occupation_group, seg.price_segment,
    seg.customers, seg.transactions, seg.orders, seg.gross_sales,
    seg.gross_sales / nullif(seg.orders, 0) AS aov,
    seg.gross_sales / nullif(totals.gross_sales, 0) AS revenue_share,
    seg.customers / totals.customers AS customer_share,
    (seg.gross_sales / nullif(totals.gross_sales, 0)) / (seg.customers / totals.customers)
        AS value_index,
    CAST(row_number() OVER (ORDER BY seg.gross_sales DESC, seg.segment) AS INTEGER)
        AS sales_rank
FROM seg, totals
ORDER BY sales_rank
