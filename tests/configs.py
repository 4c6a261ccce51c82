"""Config texts several test modules share."""

# every event to out.jsonl
ONE_FILE = """\
version: 1
consumers: {all: {file: out.jsonl}}
routes: [{name: all, to: all}]
"""

MINIMAL = """\
version: 1
consumers:
  archive:
    file: out/all.jsonl
routes:
  - name: everything
    to: archive
"""

# Three separate mistakes: 2:19 the value `10 parsecs`; 8:5 the key `fitler`;
# 11:19 the item `notifer`.
THREE_MISTAKES = """\
version: 1
shutdown_timeout: 10 parsecs
consumers:
  archive:
    file: out/all.jsonl
routes:
  - name: everything
    fitler: "a == `1`"
    to: archive
  - name: orders
    to: [archive, notifer]
"""
