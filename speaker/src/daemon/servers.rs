//! Starts the agent's local servers: the control socket (`herald bgp peers` and friends) and,
//! when configured, the metrics and health endpoint. They stop when the returned guard drops.

use crate::api::control::Agent;
use crate::config::ApiConfig;
use crate::task::AbortOnDrop;

/// Starts the servers for `agent`.
pub(crate) fn start(api: &ApiConfig, agent: &Agent) -> Vec<AbortOnDrop> {
    let mut servers = Vec::new();
    let socket = api.control_socket.clone();
    let group = api.control_socket_group.clone();
    let control_agent = agent.clone();
    servers.push(AbortOnDrop(tokio::spawn(async move {
        if let Err(error) = crate::api::control::serve_agent(socket, group, control_agent).await {
            tracing::error!(%error, "control socket stopped");
        }
    })));
    if let Some(address) = api.metrics_address {
        let agent = agent.clone();
        servers.push(AbortOnDrop(tokio::spawn(async move {
            if let Err(error) = crate::api::metrics::serve_agent(address, agent).await {
                tracing::error!(%error, "metrics endpoint stopped");
            }
        })));
    }
    servers
}
