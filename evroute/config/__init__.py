"""The config model and the checker primitives every component reads its options with.

Also YAML loading with line numbers, `${VAR}` expansion, durations and sizes, and the
pieces of JSON Schema the kinds describe their keys with.
"""
