//! The policy tester as a Squid URL-rewrite helper (`haven check --batch`): one request a
//! line in, one answer a line out.

use std::io::{BufRead, Write};

use haven_core::{Action, Engine, GroupId, Target};
use jiff::civil::DateTime;

/// The answer that sends a request to the block page.
const BLOCKED: &[u8] = b"OK status=302 url=http://haven.invalid/blocked\n";

/// Who the requests are tested as, and when.
#[derive(Debug, Clone, Copy)]
pub struct AskedAs<'a> {
    /// The group.
    pub group: GroupId,
    /// The class, for lesson modes set for a class.
    pub class: Option<&'a str>,
    /// The local time.
    pub at: DateTime,
}

/// Reads requests (the first word of each line is the URL, as Squid sends them) until the
/// input ends and answers each: `ERR` to let it through, `OK status=302 url=…` to send it to
/// the block page (blocked and warned requests alike). A request Haven cannot read fails
/// closed. The output is flushed at the end.
pub fn answer(
    engine: &Engine,
    asked: AskedAs<'_>,
    mut input: impl BufRead,
    mut out: impl Write,
) -> std::io::Result<()> {
    let mut target = Target::parse("x.invalid").map_err(std::io::Error::other)?;
    let mut line = Vec::with_capacity(1024);
    loop {
        line.clear();
        if input.read_until(b'\n', &mut line)? == 0 {
            break;
        }
        let end = line
            .iter()
            .position(u8::is_ascii_whitespace)
            .unwrap_or(line.len());
        let blocked = match std::str::from_utf8(&line[..end]).map(|url| target.parse_into(url)) {
            Ok(Ok(())) => matches!(
                engine
                    .decide(&target, asked.group, asked.class, asked.at)
                    .action,
                Action::Block | Action::Warn
            ),
            _ => true,
        };
        out.write_all(if blocked { BLOCKED } else { b"ERR\n" })?;
    }
    out.flush()
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use haven_core::policy::DEFAULT_POLICY;
    use haven_core::{Policy, Snapshot};

    use super::*;

    #[test]
    fn each_line_gets_one_answer_and_unreadable_requests_fail_closed() {
        let text = format!(
            "{DEFAULT_POLICY}\n[[deny]]\nname = \"Not this one\"\nsites = [\"blocked.example\"]\ngroups = [\"ks2\"]\n"
        );
        let policy = Policy::from_toml(&text).expect("policy");
        let engine =
            Engine::new(Arc::new(Snapshot::empty()), Arc::new(policy), "test").expect("engine");
        let asked = AskedAs {
            group: engine.group_id("ks2").expect("ks2"),
            class: None,
            at: "2026-03-02T10:00".parse().expect("time"),
        };
        let input: &[u8] =
            b"http://fine.example/ 10.0.0.1/- - GET\nhttp://blocked.example/x 10.0.0.1/- - GET\n\xff\xfe\n";
        let mut out = Vec::new();
        answer(&engine, asked, input, &mut out).expect("answers");
        assert_eq!(
            String::from_utf8(out).expect("utf-8"),
            "ERR\nOK status=302 url=http://haven.invalid/blocked\nOK status=302 url=http://haven.invalid/blocked\n"
        );
    }
}
