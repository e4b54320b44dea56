"""Apache Spark as optout's second engine: the session, and matching in Spark SQL."""
