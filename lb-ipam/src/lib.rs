//! LoadBalancer IP address management: pools, a pure deterministic allocator, persisted state,
//! and (in Kubernetes mode) a controller writing Service status.
