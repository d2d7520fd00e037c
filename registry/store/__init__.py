"""The registry's database: peewee models, migrations, journal ingest."""
