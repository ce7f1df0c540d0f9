"""The SQLite history: one writer fed by the engine, retention tiers, rollups and range queries."""
