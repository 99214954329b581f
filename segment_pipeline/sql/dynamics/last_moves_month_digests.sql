-- Per snapshot month: rows and a sum of hashes of the columns the last moves' state reads
-- from each customer's row (independent of row order, changed by any changed, added or
-- dropped row). A later run keeps the stored state while its months keep these digests.
SELECT
    snapshot_month,
    CAST(count(*) AS VARCHAR) || ':'
    || CAST(sum(hash(customer_id, segment, price_segment)) AS VARCHAR) AS digest
FROM {{ marts.customer_snapshots }}
GROUP BY snapshot_month
