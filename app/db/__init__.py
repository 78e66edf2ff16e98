"""The service's relational database: tables, engine, migrations and the model registry.

Only ``app/`` imports SQLAlchemy (README, Boundaries); ``features/`` and ``models/`` know
nothing of it.
"""
