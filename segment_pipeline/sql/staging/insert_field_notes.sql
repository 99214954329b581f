INSERT INTO {{ staging.quarantine }}
    (entity, partition_date, source_file, source_line, rule, detail, raw_values)
SELECT ?, NULL, source_file, source_line, rule, detail, raw_values FROM _field_notes
ORDER BY source_line, rule
