DELETE FROM {{ staging.quarantine }} WHERE entity = ?
