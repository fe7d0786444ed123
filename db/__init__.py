"""The read model: SQLModel tables, the SQLite connection policy, and pure event handlers."""
