-- Per staged day: a digest of the columns the snapshots read from each sale line (a sum of
-- row hashes: independent of row order, changed by any changed, added or dropped line). What
-- a month updated by a new day compares with the digests it was computed from
-- (logic/snapshot_update.py): a day whose digest moved was corrected.
SELECT
    partition_date,
    CAST(count(*) AS VARCHAR) || ':'
    || CAST(sum(hash(customer_id, order_id, order_ts, product_id, category, amount)) AS VARCHAR)
        AS digest
FROM {{ staging.transactions }}
GROUP BY partition_date
