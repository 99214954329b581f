-- Distinct keys (orders or customers) per segment and item (product or category) of some
-- purchase lines, counted as DISTINCT rows: a grouping DuckDB can spill (count(DISTINCT ...)
-- kept a hash table of every key per group). The bucket filter is empty, or keeps one bucket of
-- the keys (by the hash of the id): the buckets' counts add up to the whole's, every key being
-- in one bucket (logic/preference.py, `build_summary_inputs`).
SELECT segment, {{ reach_item }} AS item_id, count(*) AS n
FROM (
    SELECT DISTINCT segment, {{ reach_item }}, {{ reach_key }}
    FROM {{ reach_lines }}
    {{ reach_bucket_filter }}
)
GROUP BY ALL
