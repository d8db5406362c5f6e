"""One module per pipeline stage; each exposes `run(ctx, ...)` called by the matching `pipeline` command."""
