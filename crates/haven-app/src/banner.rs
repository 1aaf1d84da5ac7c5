//! The banner: where Haven listens and what to try, printed once it is running.

use std::net::SocketAddr;

use haven_dns::upstream::Upstream;

use crate::config::Config;
use crate::Context;

/// What is running where, for the banner.
#[derive(Debug)]
pub struct Listening<'a> {
    pub dns: &'a [SocketAddr],
    pub upstreams: &'a [Upstream],
    pub proxy: &'a [SocketAddr],
    pub store: &'a str,
    /// Active pupils, staff and parents.
    pub people: (i64, i64, i64),
    pub demo: bool,
    pub console: Option<SocketAddr>,
    pub ca_state: &'a str,
    pub phrases: &'a str,
    pub metrics: Option<SocketAddr>,
}

/// Prints where Haven listens, on standard output, for the person who started it. A closed
/// standard output (a detached terminal, a supervisor that ignores it) must not stop the
/// service, so write errors are ignored here.
pub fn print(ctx: &Context, config: &Config, origin: &str, l: &Listening<'_>) {
    let Listening {
        dns,
        upstreams,
        proxy,
        store,
        people,
        demo,
        console,
        ca_state,
        phrases,
        metrics,
    } = *l;
    use std::io::Write as _;
    let list = |v: &[SocketAddr]| {
        v.iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mut text = format!(
        "Haven is running (data in {}, configuration: {origin}).\n",
        ctx.data_dir.display()
    );
    text += &format!(
        "  DNS filter:  udp+tcp {}  →  upstreams {}\n",
        list(dns),
        upstreams
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join(", ")
    );
    for n in &config.networks {
        text += &format!("  network:     {} → {}\n", n.cidr, n.group);
    }
    text += &format!("  anyone else: {}\n", config.default_group);
    if let Some(m) = metrics {
        text += &format!("  metrics:     http://{m}/metrics\n");
    }
    text += &format!(
        "  store:       {store}: {} pupils, {} staff, {} parents (haven people import)\n",
        people.0, people.1, people.2
    );
    if config.events.log {
        text += "  events:      written to the store (haven events search)\n";
    }
    if let Some(p) = proxy.first() {
        text += &format!(
            "  proxy:       http {}  (browsers: http://{p}/proxy.pac)\n",
            list(proxy)
        );
        text += &format!("  HTTPS:       {ca_state}\n");
        text += &format!("  scoring:     {phrases}\n");
    }
    text += &format!(
        "  monitoring:  grade {}+ alerts: {}\n",
        config.monitor.alert_grade,
        config.alerts.summary()
    );
    match console {
        Some(c) => {
            text += &format!("  console:     http://{c}/\n");
            if demo {
                text += &format!(
                    "  sign in:     every demo person's password is {}: priya.shah (DSL),\n\
                     \x20              helen.marsh (headteacher) and owen.price (network manager) set up a\n\
                     \x20              two-step code on first sign-in; ben.carter (teacher) needs none\n",
                    crate::demo::DEMO_PASSWORD
                );
            }
        }
        None => text += "  console:     off ([console] listen)\n",
    }
    if let (Some(addr), Some(pupils)) = (dns.first(), config.networks.first()) {
        let bind = pupils.cidr.split('/').next().unwrap_or("127.0.0.1");
        text += &format!(
            "  try:         dig @{} -p {} -b {bind} bet365.com\n",
            addr.ip(),
            addr.port()
        );
    }
    if let Some(p) = proxy.first() {
        text += &format!("  try:         curl -x http://{p} http://bet365.com/\n");
        if demo {
            text += &format!(
                "  proxy as:    curl -x http://{p} --proxy-user tom.lewis:{} http://www.pokerstars.com/\n\
                 \x20              (the pupil tom.lewis), then look for it in the console's Activity\n",
                crate::demo::DEMO_PASSWORD
            );
        }
    }
    text += "Ctrl-C stops it; SIGHUP reloads the lists, the policy (a bad one keeps the old) and the model.\n";
    let mut out = std::io::stdout().lock();
    let _ = out.write_all(text.as_bytes());
    let _ = out.flush();
}
