"""One module per workflow step: compute (in memory, returns results) then write (owns every path)."""
