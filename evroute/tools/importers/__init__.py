"""Importers: routing configs written from other routers' rules, one module per source."""
