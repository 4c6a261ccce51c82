"""The files evroute keeps for itself: sealing, dead letters, the audit log, archives, spill."""
