-- Distinct orders of each segment's customers in their window: an order id shared by two
-- customers of a segment is one order (sum(frequency) would count it twice). Counted as
-- DISTINCT (segment, order) rows, a grouping DuckDB can spill (count(DISTINCT order_id) per
-- segment held every order id in memory), and in a statement of its own: beside the summary's
-- medians of 5.4M customers (100M lines) it ran out of the default memory limit, apart it
-- takes 15 s.
SELECT segment, count(*) AS orders
FROM (
    SELECT DISTINCT c.segment, l.order_id
    FROM {{ staging.transactions }} AS l
    INNER JOIN {{ marts.rfm_customer_segments }} AS c USING (customer_id)
    WHERE CAST(l.order_ts AS DATE) BETWEEN c.window_start AND c.window_end
)
GROUP BY segment
