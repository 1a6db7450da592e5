-- release: free an order's reservation; the symbol is revalued at its stored mark.
-- ARGV: order id. Returns 1 if the order had a reservation, else 0.
return release(ARGV[1]) and 1 or 0
