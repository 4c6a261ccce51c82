from evroute.cli import main

main()
