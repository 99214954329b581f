INSERT INTO {{ target }} ({{ columns }})
SELECT {{ columns }} FROM _typed
WHERE parse_rule IS NULL AND quantity {{ sign }}
  AND line_id NOT IN (SELECT line_id FROM _rejected)
ORDER BY partition_date, source_line
