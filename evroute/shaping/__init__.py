"""Matching and shaping one event: filters and patterns applied, transforms, the `fields:`
gate, the publish policy, templates of paths and subjects.
"""
