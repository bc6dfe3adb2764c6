//! `speaker`: Herald's per-node agent (BGP sessions, advertisements, L2 announcements).

fn main() {
    eprintln!("speaker: not implemented yet");
    std::process::exit(2);
}
