"""The Pub/Sub emulator: Publisher, Subscriber and IAMPolicy over gRPC, with push delivery."""
