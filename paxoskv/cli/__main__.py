from paxoskv.cli import main

main()
