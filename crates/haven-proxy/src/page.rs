//! What the proxy says to a person: the block page, error pages for upstream failures, the
//! review-request acknowledgement, and the PAC file for browsers. Everything interpolated is
//! escaped.

use std::fmt::Write as _;

/// Escapes text for HTML element content and quoted attribute values.
pub fn escape(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for c in s.chars() {
        match c {
            '&' => out.push_str("&amp;"),
            '<' => out.push_str("&lt;"),
            '>' => out.push_str("&gt;"),
            '"' => out.push_str("&quot;"),
            '\'' => out.push_str("&#39;"),
            c => out.push(c),
        }
    }
    out
}

fn shell(title: &str, body: &str) -> String {
    format!(
        "<!doctype html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">\
<title>{title}</title><style>\
body{{font-family:system-ui,sans-serif;max-width:40rem;margin:3rem auto;padding:0 1rem;line-height:1.5;color:#1b1b1b}}\
h1{{font-size:1.6rem}} .why{{font-size:1.2rem}} .small{{color:#555;font-size:.9rem}} \
button{{font-size:1rem;padding:.5rem 1rem}} code{{word-break:break-all}}\
</style></head><body>{body}</body></html>\n",
        title = escape(title),
    )
}

/// Why a page is blocked, in the words the page uses.
#[derive(Debug, Clone)]
pub struct Blocked<'a> {
    /// The school's name.
    pub school: &'a str,
    /// The address asked for.
    pub url: &'a str,
    /// The category's plain name ("Gambling"), when a category decided.
    pub category: Option<&'a str>,
    /// One line a child understands about that category.
    pub about: Option<&'a str>,
    /// The rule, for the adult who reads the page with the child.
    pub rule: &'a str,
    /// Where the review button posts, with its token; none when reviews are off.
    pub review: Option<(&'a str, &'a str)>,
    /// Who the review request is from (user name, empty when unknown) and the group whose
    /// policy blocked the page: sent with the form, bound by its token.
    pub asker: (&'a str, &'a str),
    /// A warning, not a block: where "Continue" posts, with its token.
    pub proceed: Option<(&'a str, &'a str)>,
}

/// The block page.
pub fn blocked(b: &Blocked<'_>) -> String {
    let mut body = String::new();
    let _ = write!(
        body,
        "<p class=\"small\">{school}</p><h1>{title}</h1>",
        school = escape(b.school),
        title = if b.proceed.is_some() {
            "Think before you go on"
        } else {
            "This page is blocked"
        }
    );
    match (b.category, b.about) {
        (Some(c), Some(about)) => {
            let _ = write!(
                body,
                "<p class=\"why\">The school's filter stopped this page because it is about \
<strong>{c}</strong>: {about}</p>",
                c = escape(&c.to_lowercase()),
                about = escape(about)
            );
        }
        (Some(c), None) => {
            let _ = write!(
                body,
                "<p class=\"why\">The school's filter stopped this page because it is in the \
<strong>{c}</strong> group of websites.</p>",
                c = escape(c)
            );
        }
        _ => body.push_str(
            "<p class=\"why\">The school's filter stopped this page. It is not one of the \
websites you can use at school right now.</p>",
        ),
    }
    if let Some((action, token)) = b.proceed {
        let _ = write!(
            body,
            "<p>This page is not blocked, but the school would rather you did not use it. If you \
need it for your work you may go on; your visit is recorded.</p>\
<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"url\" value=\"{url}\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\"><button type=\"submit\">Continue to \
the page</button></form>",
            action = escape(action),
            url = escape(b.url),
            token = escape(token)
        );
    } else {
        body.push_str(
            "<p><strong>What to do:</strong> tell your teacher. If you think this page should \
be allowed, you can ask for it to be checked.</p>",
        );
    }
    if let Some((action, token)) = b.review {
        let _ = write!(
            body,
            "<form method=\"post\" action=\"{action}\"><input type=\"hidden\" name=\"url\" \
value=\"{url}\"><input type=\"hidden\" name=\"user\" value=\"{user}\">\
<input type=\"hidden\" name=\"group\" value=\"{group}\">\
<input type=\"hidden\" name=\"token\" value=\"{token}\">\
<button type=\"submit\">Request a review</button></form>",
            action = escape(action),
            url = escape(b.url),
            user = escape(b.asker.0),
            group = escape(b.asker.1),
            token = escape(token)
        );
    }
    let _ = write!(
        body,
        "<p class=\"small\">Address: <code>{url}</code><br>Rule: {rule}</p>",
        url = escape(b.url),
        rule = escape(b.rule)
    );
    shell("Blocked by the school's filter", &body)
}

/// The page for a request the proxy could not complete (502, 504, 400…).
pub fn error(school: &str, title: &str, detail: &str) -> String {
    shell(
        title,
        &format!(
            "<p class=\"small\">{school}</p><h1>{title}</h1><p>{detail}</p>",
            school = escape(school),
            title = escape(title),
            detail = escape(detail)
        ),
    )
}

/// Which review request an acknowledgement is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Review {
    /// A new request, now kept.
    New,
    /// One the same person had asked before and is still open.
    AlreadyOpen,
}

/// The acknowledgement after a review request.
pub fn review_sent(school: &str, url: &str, review: Review) -> String {
    let said = if review == Review::AlreadyOpen {
        "You have already asked for this website to be looked at again. The people who look \
after the school's filter have your request; there is no need to ask again."
    } else {
        "Your request has been sent to the people who look after the school's filter."
    };
    shell(
        "Review requested",
        &format!(
            "<p class=\"small\">{school}</p><h1>Thank you</h1><p>Address: <code>{url}</code></p>\
<p>{said}</p>",
            school = escape(school),
            url = escape(url)
        ),
    )
}

/// The PAC file: local and listed networks go direct, everything else through `proxy`
/// (`host:port`). There is no DIRECT fallback: if the proxy is down, browsing stops rather than
/// going unfiltered.
pub fn pac(proxy: &str, direct: &[(std::net::Ipv4Addr, std::net::Ipv4Addr)]) -> String {
    let mut nets = String::new();
    for (net, mask) in direct {
        let _ = write!(nets, "\n      isInNet(host, \"{net}\", \"{mask}\") ||");
    }
    format!(
        "// Haven: which requests go through the school's filter.\n\
function FindProxyForURL(url, host) {{\n\
  if (isPlainHostName(host) || host == \"localhost\" || dnsDomainIs(host, \".local\"))\n\
    return \"DIRECT\";\n\
  // Addresses are compared only when written as addresses, so no name is looked up here.\n\
  if (/^\\d+\\.\\d+\\.\\d+\\.\\d+$/.test(host) && ({nets}\n      false))\n\
    return \"DIRECT\";\n\
  return \"PROXY {proxy}\";\n\
}}\n"
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn everything_interpolated_is_escaped() {
        let page = blocked(&Blocked {
            school: "St <Mary>'s",
            url: "http://x.example/\"><script>alert(1)</script>",
            category: Some("Gambling"),
            about: Some("Betting & games of chance"),
            rule: "category <gambling>",
            review: Some(("http://127.0.0.1:3128/_haven/review", "t\"k")),
            asker: ("<b>", "ks2"),
            proceed: None,
        });
        assert!(!page.contains("<script>"), "{page}");
        assert!(page.contains("St &lt;Mary&gt;&#39;s"));
        assert!(page.contains("Betting &amp; games of chance"));
        assert!(page.contains("value=\"t&quot;k\""));
        assert!(page.contains("tell your teacher"));
        assert!(page.contains("Request a review"));
    }

    #[test]
    fn pac_sends_local_networks_direct() {
        let p = pac(
            "10.0.0.1:3128",
            &[(
                "10.0.0.0".parse().expect("ip"),
                "255.0.0.0".parse().expect("ip"),
            )],
        );
        assert!(p.contains("isInNet(host, \"10.0.0.0\", \"255.0.0.0\")"));
        assert!(p.contains("return \"PROXY 10.0.0.1:3128\";"));
        assert!(!p.contains("; DIRECT"), "no unfiltered fallback");
    }
}
