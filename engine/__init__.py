"""optout engine: policies, planning, executing, reports, and the `optout` command line."""
