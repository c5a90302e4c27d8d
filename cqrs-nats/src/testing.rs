//! Throwaway nats-server processes for tests (feature `testing`).
