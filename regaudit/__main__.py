"""`python -m regaudit` runs the command line."""

from regaudit.cli import main

main()
