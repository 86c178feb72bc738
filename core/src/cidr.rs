//! `allowed_cidrs: [..]` of a listener: which client addresses may talk to it.
//!
//! Entries are CIDR blocks (`10.0.0.0/8`, `fd00::/8`) or single addresses (`127.0.0.1`). An
//! IPv4 client seen through an IPv6 socket (`::ffff:10.1.2.3`) is matched as IPv4. An empty or
//! absent list allows every address.

use ipnet::IpNet;
use serde::{Deserialize, Deserializer};
use std::fmt;
use std::net::IpAddr;

/// One entry of an allow-list.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Cidr(IpNet);

/// An `allowed_cidrs` entry that is neither an address block nor an address.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
#[error(
    "invalid CIDR {0:?}: write an address block such as 10.0.0.0/8, fd00::/8 or a single address such as 127.0.0.1"
)]
pub struct CidrError(pub String);

impl Cidr {
    /// Parses `a.b.c.d/n`, `x::y/n` or a single address.
    pub fn parse(text: &str) -> Result<Cidr, CidrError> {
        let text = text.trim();
        if let Ok(net) = text.parse::<IpNet>() {
            return Ok(Cidr(net.trunc()));
        }
        match text.parse::<IpAddr>() {
            Ok(ip) => Ok(Cidr(IpNet::from(ip))),
            Err(_) => Err(CidrError(text.to_string())),
        }
    }

    /// True when `ip` is inside the block.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.0.contains(&canonical(ip))
    }
}

impl fmt::Display for Cidr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl<'de> Deserialize<'de> for Cidr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        Cidr::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A listener's `allowed_cidrs`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize)]
#[serde(transparent)]
pub struct CidrAllowList(Vec<Cidr>);

impl CidrAllowList {
    /// An allow-list of these blocks.
    pub fn new(blocks: Vec<Cidr>) -> CidrAllowList {
        CidrAllowList(blocks)
    }

    /// True when the list names no block (every address is allowed).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    /// True when a client at `ip` may be served.
    pub fn allows(&self, ip: IpAddr) -> bool {
        self.0.is_empty() || self.0.iter().any(|block| block.contains(ip))
    }

    /// The blocks, for messages.
    pub fn blocks(&self) -> &[Cidr] {
        &self.0
    }
}

/// `::ffff:a.b.c.d` as the IPv4 address it is.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6
            .to_ipv4_mapped()
            .map(IpAddr::V4)
            .unwrap_or(IpAddr::V6(v6)),
        v4 => v4,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn list(entries: &[&str]) -> CidrAllowList {
        CidrAllowList::new(entries.iter().map(|e| Cidr::parse(e).unwrap()).collect())
    }

    #[test]
    fn blocks_single_addresses_and_mapped_ipv4() {
        let allowed = list(&["10.0.0.0/8", "127.0.0.1", "fd00::/8"]);
        assert!(allowed.allows("10.200.3.4".parse().unwrap()));
        assert!(allowed.allows("127.0.0.1".parse().unwrap()));
        assert!(!allowed.allows("127.0.0.2".parse().unwrap()));
        assert!(allowed.allows("::ffff:10.1.2.3".parse().unwrap()));
        assert!(allowed.allows("fd12::1".parse().unwrap()));
        assert!(!allowed.allows("192.168.1.1".parse().unwrap()));
        assert!(!allowed.allows("::1".parse().unwrap()));
        assert!(CidrAllowList::default().allows("203.0.113.9".parse().unwrap()));
    }

    #[test]
    fn a_bad_entry_is_named_with_its_index() {
        let error = serde_json::from_str::<CidrAllowList>(r#"["10.0.0.0/8", "10.0.0.0/33"]"#)
            .unwrap_err()
            .to_string();
        assert!(error.contains("invalid CIDR \"10.0.0.0/33\""), "{error}");
        // Host bits are ignored, as every firewall does.
        assert_eq!(Cidr::parse("10.1.2.3/8").unwrap().to_string(), "10.0.0.0/8");
    }
}
