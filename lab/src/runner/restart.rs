//! Crash and restart of a node's agent in a running lab (`lab demo`'s restart row): SIGKILL, as a
//! crash or an OOM kill would, then the same `herald agent` command again, recorded in the lab's
//! state so `lab down` stops the new process too. The kernel keeps what the dead agent left:
//! pinned maps and program links keep forwarding, graceful-restart peers keep its routes.

use std::process::Command;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;

use super::state::Resource;
use super::{AGENT, Runner, agent_args, images, start_settled};
use crate::process::ProcessId;
use crate::{Error, Result};

/// How long a killed agent may take to disappear.
const REAP: Duration = Duration::from_secs(5);

impl Runner {
    /// Kills `node`'s agent in `lab` with SIGKILL, waits `down_for`, and starts it again.
    /// Returns the new process.
    pub fn crash_and_restart_agent(
        &self,
        lab: &str,
        node: &str,
        down_for: Duration,
    ) -> Result<ProcessId> {
        let dir = self.lab_dir(lab);
        let mut state = dir
            .load()?
            .ok_or_else(|| Error::State(format!("lab {lab} is not up")))?;
        let running = state
            .resources
            .iter()
            .rev()
            .find_map(|r| match r {
                Resource::Process { node: n, name, id }
                    if n == node && name == AGENT && id.is_alive() =>
                {
                    Some(*id)
                }
                _ => None,
            })
            .ok_or_else(|| Error::State(format!("no running agent on {node} in lab {lab}")))?;
        running.signal(Signal::SIGKILL)?;
        let killed = Instant::now();
        while running.is_alive() {
            if killed.elapsed() > REAP {
                return Err(Error::State(format!("{node}'s agent survived SIGKILL")));
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        std::thread::sleep(down_for);
        let (netns, env) = state
            .nodes
            .iter()
            .find(|n| n.name == node)
            .map(|n| (n.netns.clone(), n.env.clone()))
            .ok_or_else(|| Error::State(format!("lab {lab} has no node {node}")))?;
        let node_dir = dir.node_dir(node);
        let conf = node_dir
            .join("binds")
            .join(images::AGENT_CONF.trim_start_matches('/'));
        let pins = dir.bpffs().join(node);
        let mut c = Command::new("ip");
        c.args(["netns", "exec", &netns])
            .arg(images::agent_binary()?);
        agent_args(&mut c, &conf, &pins, &node_dir).envs(&env);
        let child = start_settled(AGENT, c, &node_dir, node)?;
        let id = child.detach();
        dir.record(
            &mut state,
            Resource::Process {
                node: node.to_owned(),
                name: AGENT.to_owned(),
                id,
            },
        )?;
        Ok(id)
    }
}
