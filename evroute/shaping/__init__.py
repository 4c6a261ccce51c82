"""Matching and shaping one event, for the engine and the offline tools alike.

A transform's output, the `fields:` gate, the publish policy, templates of paths and
subjects.
"""
