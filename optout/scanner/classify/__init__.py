"""Column classification: name hints, value profiles and Presidio, combined into findings."""
