"""`python -m optout.cli`."""

from optout.cli.main import main

main()
