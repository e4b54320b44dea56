"""optout: find personal data across a data team's tables and files, and erase a person from all of it on request."""
