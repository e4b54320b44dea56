"""Cascade targets: the copies of a subject outside the scanned data — caches, search indexes,
third-party systems — configured in a targets file and erased after the data, with the same
moves as apply's targets (prepare, check, commit, rollback, residue)."""
