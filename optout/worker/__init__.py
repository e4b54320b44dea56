"""The event-driven worker: opt-out and erasure requests from a NATS JetStream stream, planned
and applied through the journal, cascaded to caches, search indexes and third parties."""
