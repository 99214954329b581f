-- The first months of every pair of consecutive snapshot months, in order.
WITH {{ pairs_cte }}
SELECT from_month FROM pairs ORDER BY from_month
