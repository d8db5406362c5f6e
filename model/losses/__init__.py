"""Training losses on padded batches: frame alignment (`alignment`), clip-level objectives (`clip`) and
VASOT's transport losses (`vasot`)."""
