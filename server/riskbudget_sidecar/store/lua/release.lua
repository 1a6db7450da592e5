-- release: free an order's reservation if the caller holds it; the symbol is revalued at its
-- stored mark.
-- ARGV: order id, the caller's instance id. Returns 1 if it held a reservation, else 0.
return release(ARGV[1], ARGV[2]) and 1 or 0
