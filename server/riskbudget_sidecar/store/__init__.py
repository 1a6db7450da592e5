"""Trading state the sidecar keeps: positions, reservations, decisions, trading states."""
