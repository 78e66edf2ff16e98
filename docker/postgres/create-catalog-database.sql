-- Run once by the postgres image on an empty data directory, as POSTGRES_USER (fraudscore):
-- the Iceberg SQL catalog of the audit table gets a database of its own beside the registry.
CREATE DATABASE fraudscore_catalog;
