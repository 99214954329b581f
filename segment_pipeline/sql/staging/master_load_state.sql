-- A master's recorded staging (`?`: entity) beside what its table and quarantine hold now.
SELECT
    m.input_key, m.raw, m.staged, m.quarantined,
    (SELECT count(*) FROM {{ target }}) AS staged_now,
    (SELECT count(*) FROM {{ staging.quarantine }} WHERE entity = ?) AS quarantined_now
FROM {{ staging.master_loads }} AS m
WHERE m.entity = ?
