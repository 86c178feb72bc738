//! What every admin request passes before any route sees it (the admin API is not a way in):
//!
//! 1. the client's address must be in `service.admin.allowed_cidrs` (403; nothing of the body is
//!    read);
//! 2. `Host` must name this listener: its own address, a loopback address or name, or an entry
//!    of `service.admin.allowed_hosts` (403), so a web page cannot reach it through DNS
//!    rebinding;
//! 3. a state-changing request (any method but GET, HEAD and OPTIONS, on any route, present or
//!    future) is refused with 403 when it carries a foreign `Origin` (or `Sec-Fetch-Site:
//!    cross-site`), with 401 without the bearer token, and with 403 unless
//!    `service.admin.allow_config_changes` is true.

use super::auth::{self, Denied};
use super::control::{ApiFailure, Control};
use axum::extract::{Request, State};
use axum::http::{HeaderValue, Method, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;

/// The two ends of the connection a request came on (set by the admin listener).
#[derive(Clone, Copy, Debug)]
pub struct Peer {
    /// The client's address.
    pub remote: SocketAddr,
    /// The address the client connected to.
    pub local: SocketAddr,
}

/// True for methods that may change something.
pub fn is_state_changing(method: &Method) -> bool {
    !matches!(*method, Method::GET | Method::HEAD | Method::OPTIONS)
}

/// The middleware.
pub(super) async fn guard(
    State(control): State<Arc<Control>>,
    request: Request,
    next: Next,
) -> Response {
    match refusal(&control, &request) {
        None => next.run(request).await,
        Some(response) => response,
    }
}

/// The answer refusing `request`, or `None` when it may go on.
fn refusal(control: &Control, request: &Request) -> Option<Response> {
    let admin = control.admin()?;
    let peer = request.extensions().get::<Peer>().copied();
    if let Some(peer) = peer
        && !admin.allowed_cidrs.allows(peer.remote.ip())
    {
        return Some(refuse(
            403,
            format!(
                "client address {} is not in service.admin.allowed_cidrs",
                peer.remote.ip()
            ),
            "service.admin.allowed_cidrs",
        ));
    }
    let host = request
        .uri()
        .host()
        .map(str::to_string)
        .or_else(|| {
            request
                .headers()
                .get(header::HOST)
                .and_then(|h| h.to_str().ok())
                .map(str::to_string)
        })
        .unwrap_or_default();
    let local = peer.map(|p| p.local.ip());
    if !host_allowed(&host, local, admin) {
        return Some(refuse(
            403,
            format!(
                "Host {host:?} does not name this admin listener: use its address or a loopback name, or list the name in service.admin.allowed_hosts"
            ),
            "Host",
        ));
    }
    if !is_state_changing(request.method()) {
        return None;
    }
    if let Some(origin) = request.headers().get(header::ORIGIN) {
        let origin_host = origin.to_str().ok().and_then(origin_host);
        if !origin_host.is_some_and(|h| host_allowed(h, local, admin)) {
            return Some(refuse(
                403,
                format!(
                    "state-changing requests from another origin ({:?}) are refused",
                    String::from_utf8_lossy(origin.as_bytes())
                ),
                "Origin",
            ));
        }
    }
    if request
        .headers()
        .get("sec-fetch-site")
        .is_some_and(|v| v.as_bytes().eq_ignore_ascii_case(b"cross-site"))
    {
        return Some(refuse(
            403,
            "state-changing requests from another site are refused",
            "Origin",
        ));
    }
    match auth::check(request.headers(), admin.token()) {
        Ok(()) if admin.token().is_some() => {}
        Ok(()) => {
            return Some(refuse(
                403,
                "state-changing requests need service.admin.allow_config_changes: true and service.admin.auth.bearer_token",
                "service.admin.allow_config_changes",
            ));
        }
        Err(denied) => {
            let message = match denied {
                Denied::Missing => "missing `Authorization: Bearer <token>`",
                Denied::Wrong => "wrong bearer token",
            };
            let mut response = refuse(401, message, "Authorization");
            response.headers_mut().insert(
                header::WWW_AUTHENTICATE,
                HeaderValue::from_static("Bearer realm=\"siemrelay\""),
            );
            return Some(response);
        }
    }
    if !admin.allow_config_changes {
        return Some(refuse(
            403,
            "config changes through the API are off: set service.admin.allow_config_changes: true",
            "service.admin.allow_config_changes",
        ));
    }
    None
}

fn refuse(status: u16, error: impl Into<String>, key: &str) -> Response {
    ApiFailure::new(status, error, key).into_response()
}

/// The host of an `Origin` (`scheme://host[:port]`); `None` for `null` or anything else.
fn origin_host(origin: &str) -> Option<&str> {
    let (_, rest) = origin.split_once("://")?;
    (!rest.is_empty() && !rest.contains('/')).then_some(rest)
}

/// `host[:port]` without the port (`[::1]:8686` → `::1`).
fn without_port(host: &str) -> &str {
    if let Some(rest) = host.strip_prefix('[') {
        return rest.split_once(']').map_or(rest, |(ip, _)| ip);
    }
    match host.rsplit_once(':') {
        Some((name, port)) if !name.contains(':') && port.bytes().all(|b| b.is_ascii_digit()) => {
            name
        }
        _ => host,
    }
}

/// True when `host` names this listener: a loopback address or name, the address the client
/// connected to, the configured endpoint's address, or an `allowed_hosts` entry.
pub fn host_allowed(host: &str, local: Option<IpAddr>, admin: &super::AdminConfig) -> bool {
    let name = without_port(host.trim())
        .trim_end_matches('.')
        .to_ascii_lowercase();
    if name.is_empty() {
        return false;
    }
    if let Ok(ip) = name.parse::<IpAddr>() {
        let ip = canonical(ip);
        let endpoint = canonical(admin.endpoint.addr.ip());
        return ip.is_loopback()
            || local.map(canonical) == Some(ip)
            || (!endpoint.is_unspecified() && endpoint == ip);
    }
    name == "localhost"
        || name.ends_with(".localhost")
        || admin.allowed_hosts.iter().any(|allowed| {
            without_port(allowed.trim())
                .trim_end_matches('.')
                .eq_ignore_ascii_case(&name)
        })
}

fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::admin::AdminConfig;

    fn admin(yaml: &str) -> AdminConfig {
        serde_yaml::from_str(yaml).unwrap()
    }

    #[test]
    fn only_this_listeners_names_are_hosts() {
        let config =
            admin("{ endpoint: '0.0.0.0:8686', allowed_hosts: [siemrelay.monitoring.svc] }");
        let local = Some("10.1.2.3".parse().unwrap());
        for good in [
            "127.0.0.1:8686",
            "localhost:8686",
            "LOCALHOST",
            "[::1]:8686",
            "10.1.2.3:8686",
            "siemrelay.monitoring.svc:8686",
            "app.localhost",
        ] {
            assert!(host_allowed(good, local, &config), "{good}");
        }
        for bad in [
            "evil.example:8686",
            "evil.example",
            "10.9.9.9:8686",
            "",
            "localhost.evil.example",
            "siemrelay.monitoring.svc.evil.example",
        ] {
            assert!(!host_allowed(bad, local, &config), "{bad}");
        }
    }

    #[test]
    fn origins_are_read_as_hosts() {
        assert_eq!(origin_host("http://127.0.0.1:8686"), Some("127.0.0.1:8686"));
        assert_eq!(origin_host("null"), None);
        assert_eq!(origin_host("http://evil.example/path"), None);
        assert!(is_state_changing(&Method::POST));
        assert!(!is_state_changing(&Method::GET));
    }
}
