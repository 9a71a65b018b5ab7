"""Runtime: Context, value codec, in-memory and gRPC transports, run_local."""
