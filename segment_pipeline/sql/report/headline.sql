-- Over staging.transactions, not the staging.sales_lines view: DuckDB keeps the view's two
-- LEFT JOINs even when no joined column is read. Only the category needs the product master,
-- and only per distinct (product, line category) pair.
WITH line_totals AS (
    SELECT
        count(DISTINCT customer_id) AS customers,
        count(DISTINCT order_id) AS orders,
        count(*) AS lines,
        CAST(sum(amount) AS DOUBLE) AS revenue,
        min(CAST(order_ts AS DATE)) AS first_day,
        max(CAST(order_ts AS DATE)) AS last_day,
        count(DISTINCT CAST(order_ts AS DATE)) AS sales_days,
        count(DISTINCT product_id) AS products
    FROM {{ staging.transactions }}
),
line_categories AS (
    -- the sales_lines view's category: the line's own, else the product master's, else Unknown
    SELECT count(DISTINCT coalesce(nullif(c.category, ''), p.category, 'Unknown')) AS categories
    FROM (SELECT DISTINCT product_id, category FROM {{ staging.transactions }}) AS c
    LEFT JOIN {{ staging.products }} AS p USING (product_id)
)
SELECT t.*, c.categories FROM line_totals AS t, line_categories AS c
