//! Operator actions on one session (`speaker reset`): an administrative reset, as an RFC 8538
//! Hard Reset or one that keeps routes across it, and soft resets that leave the session up —
//! asking the peer to re-send its routes (ROUTE-REFRESH, RFC 2918) or re-sending ours.

use std::time::Instant;

use bgp_proto::iana::{CeaseSubcode, RouteRefreshSubtype};
use bgp_proto::{Message, Notification, RouteRefresh};
use serde::{Deserialize, Serialize};

use super::{Output, Session, hard_reset};
use crate::bgp::fsm::{self, State};

/// What `speaker reset` does to a peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum PeerReset {
    /// Cease/Administrative Reset; with graceful restart and the N bit both sides keep the
    /// other's routes as stale until the new session has re-sent them.
    Session,
    /// The same as an RFC 8538 Hard Reset: both sides flush the other's routes at once.
    Hard,
    /// The session stays up; the peer is asked to re-send its routes (ROUTE-REFRESH), which go
    /// through the current import policy again.
    SoftIn,
    /// The session stays up; our Adj-RIB-Out is sent to the peer again.
    SoftOut,
}

impl PeerReset {
    /// What was done, for the CLI.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Session => "session reset (Cease/Administrative Reset)",
            Self::Hard => "hard reset (RFC 8538)",
            Self::SoftIn => "soft reset in: ROUTE-REFRESH sent",
            Self::SoftOut => "soft reset out: our routes sent again",
        }
    }
}

impl Session {
    /// Administrative reset (Cease/Administrative Reset with an RFC 9003 message); the session
    /// restarts after the IdleHold time. RFC 8538 §5 leaves Administrative Reset to "user
    /// control": with `hard` (and the N bit negotiated) it goes out as a Hard Reset and both
    /// sides flush each other's routes; otherwise the peer keeps our routes as stale and we keep
    /// its routes, as across a restart.
    pub fn admin_reset(&mut self, now: Instant, hard: bool, message: &str) -> Vec<Output> {
        let mut notification = Notification::shutdown(CeaseSubcode::AdministrativeReset, message)
            .unwrap_or_else(|_| Notification::cease(CeaseSubcode::AdministrativeReset));
        if hard && self.notification_gr() {
            notification = hard_reset(&notification);
        }
        let reason = if hard { "hard reset" } else { "reset" };
        self.handle(
            now,
            fsm::Input::Reset {
                notification,
                reason: format!("administrative {reason}"),
            },
        )
    }

    /// Carries out `kind`. A soft reset needs an Established session, and soft-in needs the
    /// peer's route refresh capability; the error says which is missing.
    pub fn operator_reset(&mut self, now: Instant, kind: PeerReset) -> Result<Vec<Output>, String> {
        match kind {
            PeerReset::Session => Ok(self.admin_reset(now, false, "reset by the operator")),
            PeerReset::Hard => Ok(self.admin_reset(now, true, "hard reset by the operator")),
            PeerReset::SoftIn | PeerReset::SoftOut => {
                let state = self.fsm.state();
                if state != State::Established {
                    return Err(format!(
                        "a soft reset needs an Established session (it is {})",
                        state.name()
                    ));
                }
                let mut out = Vec::new();
                if kind == PeerReset::SoftOut {
                    let table = self.rib_out.routes();
                    self.send_table(&table, &mut out);
                    return Ok(out);
                }
                if !self.fsm.negotiated().is_some_and(|n| n.route_refresh) {
                    return Err("the peer did not advertise the route refresh capability; \
                                use a session reset"
                        .to_owned());
                }
                for family in self.negotiated_families() {
                    self.send(
                        Message::RouteRefresh(RouteRefresh::new(
                            family,
                            RouteRefreshSubtype::Normal,
                        )),
                        &mut out,
                    );
                }
                Ok(out)
            }
        }
    }
}
