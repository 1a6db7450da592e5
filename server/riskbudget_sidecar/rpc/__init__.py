"""gRPC transport: servicers, converters, the error table, auth, health, reflection."""
