UPDATE _typed_master SET {{ field }} = 'Unknown'
WHERE parse_rule IS NULL AND {{ field }} <> 'Unknown'
  AND NOT list_contains(?::VARCHAR[], {{ field }})
