"""`python -m inferplane.cli` runs the command line."""

from inferplane.cli.app import main

main()
