//! The ops surface: the unix control socket the CLI talks to ([`control`]), the CLI's rendering
//! of what it gets back ([`cli`]) and the Prometheus endpoint ([`metrics`]).

pub mod cli;
pub mod control;
pub mod metrics;
