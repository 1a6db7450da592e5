"""Domain logic: pure Python and numpy. No transport, no I/O, no clock reads."""
