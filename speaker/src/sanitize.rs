//! Text a peer chose (a BGP shutdown communication, RFC 8203/9003; a node name heard on the L2
//! segment) made safe for a terminal or a log line: control characters (C0 such as ESC and CR,
//! DEL, C1) and bidirectional overrides are shown as `\u{..}` escapes, so a peer cannot move the
//! cursor, clear the screen, forge log lines or reorder what the operator reads. Pure.

/// `text` with every control or bidi-override character escaped. Idempotent (the output has no
/// control characters left), so the agent and the CLI may both apply it.
pub fn printable(text: &str) -> String {
    let mut out = String::with_capacity(text.len());
    for c in text.chars() {
        if c.is_control() || is_bidi_control(c) {
            out.push_str(&format!("\\u{{{:x}}}", u32::from(c)));
        } else {
            out.push(c);
        }
    }
    out
}

fn is_bidi_control(c: char) -> bool {
    matches!(c, '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}' | '\u{2066}'..='\u{2069}')
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn control_characters_are_escaped() {
        assert_eq!(
            printable("maint\x1b[2J\r\nnext"),
            "maint\\u{1b}[2J\\u{d}\\u{a}next"
        );
        assert_eq!(printable("c1\u{9b}x"), "c1\\u{9b}x");
        assert_eq!(printable("rtl\u{202e}txt"), "rtl\\u{202e}txt");
        let once = printable("x\x1by");
        assert_eq!(printable(&once), once);
        assert_eq!(printable("plain näme"), "plain näme");
    }
}
