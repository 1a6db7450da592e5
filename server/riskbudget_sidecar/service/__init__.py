"""The application: wires engine, store and clock; publishes budget snapshots."""
