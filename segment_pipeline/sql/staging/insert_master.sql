INSERT INTO {{ target }} ({{ columns }})
SELECT {{ columns }} FROM _typed_master
WHERE parse_rule IS NULL
  AND source_line NOT IN (SELECT source_line FROM _rejected_master)
ORDER BY source_line
