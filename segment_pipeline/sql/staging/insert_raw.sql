INSERT INTO {{ raw.transactions }} ({{ columns }})
SELECT {{ columns }} FROM ({{ source }}) AS src
WHERE partition_date BETWEEN ? AND ?
