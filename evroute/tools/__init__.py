"""Offline tools over a config: explain, graph, routing tests, sample checks, importers.

They never import the engine: what they decide about an event, they decide with shaping/.
"""
