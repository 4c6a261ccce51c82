"""The terminal: tables, reports, progress and the live view, drawn with Rich."""
