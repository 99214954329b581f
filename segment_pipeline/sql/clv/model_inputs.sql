SELECT *, CAST($as_of AS DATE) AS as_of, CAST($window_start AS DATE) AS window_start,
       CAST($window_end AS DATE) AS window_end
FROM ({{ btyd_inputs }})
