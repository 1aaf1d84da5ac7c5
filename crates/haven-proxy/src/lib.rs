//! Haven's filtering HTTP(S) proxy.
//!
//! An explicit forward proxy: HTTP/1.1 requests in absolute form are decided by the policy for
//! the client's group and forwarded (keep-alive both ways, bodies streamed, hop-by-hop headers
//! removed, WebSocket upgrades passed through), or answered with a block page that says why in
//! plain words. CONNECT tunnels go only to `connect_ports`, are decided on the host (an address
//! as itself) and again on the server name in the TLS ClientHello; anything that is not a
//! ClientHello naming the host (or an allowed site) is a bypass attempt and is stopped.
//! Browsers find the proxy through `proxy.pac` / `wpad.dat`.

pub mod auth;
pub mod ca;
pub mod clamd;
mod clock;
pub mod filetype;
pub mod headers;
pub mod metrics;
pub mod page;
pub mod proxy;
pub mod safe;
pub mod score;
pub mod sni;

pub use auth::{Authenticate, Authenticator, ProxyUser};
pub use proxy::{
    Body, ConfigError, PageSeen, PageSink, Proxy, ProxyConfig, ReviewOutcome, ReviewRequest,
    ReviewSink,
};
