INSERT INTO _field_notes
SELECT source_file, source_line, ? || '_not_declared',
       ? || '=' || to_json({{ field }}) || ' is not one of the values the source declares ('
           || array_to_string(?::VARCHAR[], ', ') || '); the profile is kept with it Unknown',
       raw_values
FROM _typed_master
WHERE parse_rule IS NULL AND {{ field }} <> 'Unknown'
  AND NOT list_contains(?::VARCHAR[], {{ field }})
