"""`python -m evroute`: the same as the `evroute` command."""

from evroute.entry import main

main()
