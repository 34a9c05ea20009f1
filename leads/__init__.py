"""Activity events and their ingestion."""
