"""The command line, `optout`: thin adapters over the library."""
