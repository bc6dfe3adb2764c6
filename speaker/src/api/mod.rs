//! The ops surface: the unix control socket the CLI talks to ([`control`]), the CLI's rendering
//! of what it gets back ([`cli`]) and the Prometheus endpoint ([`metrics`]); [`control_access`]
//! keeps the control socket private and bounded.

pub mod cli;
pub mod control;
pub mod control_access;
pub mod metrics;
