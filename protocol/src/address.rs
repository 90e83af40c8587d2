//! Relay addresses: `kith://<relay public key>@host:port`. The key (base32 or
//! hex) is what the client pins in TLS; host may be a DNS name, an IPv4
//! address or a bracketed IPv6 address; the port defaults to 7447.

use std::fmt;
use std::str::FromStr;

use crate::keys::{KeyError, RelayKey};
use crate::msg::DEFAULT_PORT;

/// URL scheme of relay addresses.
pub const SCHEME: &str = "kith://";

/// A parsed relay address.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RelayAddress {
    /// The relay's pinned public key.
    pub key: RelayKey,
    /// Host name or IP address (IPv6 without brackets).
    pub host: String,
    /// UDP port.
    pub port: u16,
}

/// Why an address string was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AddressError {
    /// The string does not start with `kith://`.
    #[error("relay address must start with 'kith://'")]
    Scheme,
    /// No `@` between key and host.
    #[error("relay address must be kith://<key>@host:port")]
    MissingAt,
    /// The key part is not a valid key.
    #[error("relay key: {0}")]
    Key(#[from] KeyError),
    /// Empty or invalid host.
    #[error("invalid host '{0}'")]
    Host(String),
    /// The port is not a number in 1..=65535.
    #[error("invalid port '{0}'")]
    Port(String),
}

impl RelayAddress {
    /// `host:port` suitable for DNS resolution (`[v6]:port` for IPv6).
    pub fn host_port(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl fmt::Display for RelayAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{SCHEME}{}@{}", self.key, self.host_port())
    }
}

impl FromStr for RelayAddress {
    type Err = AddressError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim();
        let rest = s
            .get(..SCHEME.len())
            .filter(|p| p.eq_ignore_ascii_case(SCHEME))
            .map(|_| &s[SCHEME.len()..])
            .ok_or(AddressError::Scheme)?;
        let rest = rest.trim_end_matches('/');
        let (key, hostport) = rest.split_once('@').ok_or(AddressError::MissingAt)?;
        let key: RelayKey = key.parse()?;
        let (host, port) = if let Some(v6) = hostport.strip_prefix('[') {
            let (h, after) = v6
                .split_once(']')
                .ok_or_else(|| AddressError::Host(hostport.into()))?;
            let port = match after {
                "" => None,
                p => Some(
                    p.strip_prefix(':')
                        .ok_or_else(|| AddressError::Port(p.into()))?,
                ),
            };
            if h.parse::<std::net::Ipv6Addr>().is_err() {
                return Err(AddressError::Host(h.into()));
            }
            (h, port)
        } else {
            match hostport.rsplit_once(':') {
                Some((h, p)) => (h, Some(p)),
                None => (hostport, None),
            }
        };
        let host_ok = !host.is_empty()
            && host.len() <= 253
            && host
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || matches!(c, '.' | '-' | ':' | '_'));
        if !host_ok {
            return Err(AddressError::Host(host.chars().take(80).collect()));
        }
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => match p.parse::<u16>() {
                Ok(n) if n > 0 => n,
                _ => return Err(AddressError::Port(p.chars().take(20).collect())),
            },
        };
        Ok(Self {
            key,
            host: host.to_owned(),
            port,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ed25519_dalek::SigningKey;

    fn key() -> RelayKey {
        SigningKey::from_bytes(&[3; 32]).verifying_key().into()
    }

    #[test]
    fn parses_and_prints() {
        let k = key();
        let a: RelayAddress = format!("kith://{k}@relay.example.org:9000")
            .parse()
            .unwrap();
        assert_eq!(a.host, "relay.example.org");
        assert_eq!(a.port, 9000);
        assert_eq!(a.to_string().parse::<RelayAddress>().unwrap(), a);
        let a: RelayAddress = format!("kith://{k}@[::1]:7000").parse().unwrap();
        assert_eq!(a.host, "::1");
        assert_eq!(a.host_port(), "[::1]:7000");
        assert_eq!(a.to_string().parse::<RelayAddress>().unwrap(), a);
        let a: RelayAddress = format!("kith://{k}@10.0.0.1").parse().unwrap();
        assert_eq!(a.port, DEFAULT_PORT);
    }

    #[test]
    fn refuses_bad_addresses() {
        let k = key();
        assert_eq!(
            "http://x@y".parse::<RelayAddress>(),
            Err(AddressError::Scheme)
        );
        assert_eq!(
            "kith://abc".parse::<RelayAddress>(),
            Err(AddressError::MissingAt)
        );
        assert!(matches!(
            "kith://abc@h:1".parse::<RelayAddress>(),
            Err(AddressError::Key(_))
        ));
        assert!(matches!(
            format!("kith://{k}@h:0").parse::<RelayAddress>(),
            Err(AddressError::Port(_))
        ));
        assert!(matches!(
            format!("kith://{k}@h:99999").parse::<RelayAddress>(),
            Err(AddressError::Port(_))
        ));
        assert!(matches!(
            format!("kith://{k}@:5").parse::<RelayAddress>(),
            Err(AddressError::Host(_))
        ));
        assert!(matches!(
            format!("kith://{k}@[zz]:5").parse::<RelayAddress>(),
            Err(AddressError::Host(_))
        ));
        assert!(matches!(
            format!("kith://{k}@a b:5").parse::<RelayAddress>(),
            Err(AddressError::Host(_))
        ));
    }
}
