//! The network guard against server-side request forgery: webhook
//! destinations may not resolve to loopback, private, link-local (cloud
//! metadata), shared, unspecified, multicast or documentation addresses
//! unless the range is allowed in `delivery.allowed_networks`. Checked when
//! a subscription is created and again on every connection, through the
//! HTTP client's resolver, so DNS rebinding cannot slip past it.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use ipnet::IpNet;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};

/// Which destination addresses are allowed.
#[derive(Clone, Debug, Default)]
pub struct NetworkGuard {
    allowed: Arc<Vec<IpNet>>,
}

impl NetworkGuard {
    pub fn new(allowed: Vec<IpNet>) -> Self {
        NetworkGuard { allowed: Arc::new(allowed) }
    }

    /// True when Herald may connect to `ip`.
    pub fn permits(&self, ip: IpAddr) -> bool {
        let ip = match ip {
            IpAddr::V6(v6) => v6.to_ipv4_mapped().map(IpAddr::V4).unwrap_or(IpAddr::V6(v6)),
            v4 => v4,
        };
        self.allowed.iter().any(|net| net.contains(&ip)) || is_public(ip)
    }

    /// Resolves `host` and fails unless every address is permitted.
    pub async fn check_host(&self, host: &str, port: u16) -> Result<Vec<SocketAddr>, String> {
        let addrs: Vec<SocketAddr> = match host.trim_matches(['[', ']']).parse::<IpAddr>() {
            Ok(ip) => vec![SocketAddr::new(ip, port)],
            Err(_) => tokio::net::lookup_host((host, port))
                .await
                .map_err(|e| format!("cannot resolve {host}: {e}"))?
                .collect(),
        };
        if addrs.is_empty() {
            return Err(format!("{host} resolves to no address"));
        }
        if let Some(bad) = addrs.iter().find(|a| !self.permits(a.ip())) {
            return Err(format!(
                "{host} resolves to {} which is a private, loopback, link-local or otherwise internal address \
                 (allow its range in delivery.allowed_networks to use it)",
                bad.ip()
            ));
        }
        Ok(addrs)
    }
}

/// The HTTP client's resolver: refuses names resolving to forbidden addresses.
impl Resolve for NetworkGuard {
    fn resolve(&self, name: Name) -> Resolving {
        let guard = self.clone();
        Box::pin(async move {
            let addrs = guard
                .check_host(name.as_str(), 0)
                .await
                .map_err(|e| -> Box<dyn std::error::Error + Send + Sync> { e.into() })?;
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

fn is_public(ip: IpAddr) -> bool {
    const FORBIDDEN: &[&str] = &[
        "0.0.0.0/8",
        "10.0.0.0/8",
        "100.64.0.0/10",
        "127.0.0.0/8",
        "169.254.0.0/16",
        "172.16.0.0/12",
        "192.0.0.0/24",
        "192.0.2.0/24",
        "192.168.0.0/16",
        "198.18.0.0/15",
        "198.51.100.0/24",
        "203.0.113.0/24",
        "224.0.0.0/3",
        "::/128",
        "::1/128",
        "64:ff9b::/96",
        "100::/64",
        "2001:db8::/32",
        "fc00::/7",
        "fe80::/10",
        "ff00::/8",
    ];
    !FORBIDDEN.iter().any(|net| net.parse::<IpNet>().is_ok_and(|n| n.contains(&ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn internal_addresses_are_refused_unless_allowed() {
        let guard = NetworkGuard::default();
        for bad in [
            "127.0.0.1",
            "10.1.2.3",
            "172.20.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "::1",
            "fd00:ec2::254",
            "fe80::1",
            "0.0.0.0",
            "::ffff:127.0.0.1",
            "100.100.100.200",
        ] {
            assert!(!guard.permits(bad.parse().unwrap()), "{bad} must be refused");
        }
        for good in ["93.184.215.14", "1.1.1.1", "2606:4700::1111"] {
            assert!(guard.permits(good.parse().unwrap()), "{good} must be allowed");
        }
        let loopback = NetworkGuard::new(vec!["127.0.0.1/32".parse().unwrap()]);
        assert!(loopback.permits("127.0.0.1".parse().unwrap()));
        assert!(!loopback.permits("127.0.0.2".parse().unwrap()));
    }

    #[tokio::test]
    async fn host_checks_resolve_names_and_literals() {
        let guard = NetworkGuard::default();
        let err = guard.check_host("localhost", 80).await.unwrap_err();
        assert!(err.contains("internal address"), "{err}");
        assert!(guard.check_host("[::1]", 80).await.is_err());
        assert!(guard.check_host("169.254.169.254", 80).await.is_err());
        assert!(guard.check_host("8.8.8.8", 443).await.is_ok());
    }
}
