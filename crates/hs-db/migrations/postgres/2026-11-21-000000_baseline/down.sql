-- The baseline is never rolled back: it holds the operator's data.
SELECT 1;
