from evroute.entry import main

main()
