"""The run's memory: the SQLite journal, its schema, its rebuild, what was spent and delivered."""
