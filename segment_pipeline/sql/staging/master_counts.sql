SELECT (SELECT count(*) FROM _typed_master), (SELECT count(*) FROM {{ target }}),
       (SELECT count(*) FROM {{ staging.quarantine }} WHERE entity = ?)
