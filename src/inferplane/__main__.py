"""`python -m inferplane` runs the command line."""

from inferplane.cli.app import main

main()
