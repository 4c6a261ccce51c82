"""The event model: lines and batches, JSON reading and writing, parcels, receipts, stats."""
