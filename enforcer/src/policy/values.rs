//! Parsing the values a policy holds: durations, paths, network endpoints. Pure functions.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr},
    time::Duration,
};

use enforcer_common::KEY_PATH_BYTES;

/// A path rule: absolute, normalized; `dir` when it names a directory tree (written with a
/// trailing `/`).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PathPattern {
    pub path: String,
    pub dir: bool,
}

impl PathPattern {
    /// Whether the rule covers `path` (an absolute, normalized path).
    pub fn covers(&self, path: &str) -> bool {
        if self.dir {
            path.starts_with(&self.path) || path == self.path.trim_end_matches('/')
        } else {
            path == self.path
        }
    }

    /// Bytes of the rule as an LPM key: directories keep the `/`, files add the NUL.
    pub fn key_bytes(&self) -> Vec<u8> {
        let mut bytes = self.path.as_bytes().to_vec();
        if !self.dir {
            bytes.push(0);
        }
        bytes
    }

    /// Length used to order rules by specificity.
    pub fn specificity(&self) -> usize {
        self.key_bytes().len()
    }
}

/// Parses a path rule. Relative paths, `.`/`..` components, NUL bytes and paths too long for
/// the kernel maps are errors.
pub fn parse_path(text: &str) -> Result<PathPattern, String> {
    if text.is_empty() {
        return Err("empty path; expected an absolute path such as \"/srv/repo/\"".into());
    }
    if !text.starts_with('/') {
        return Err(format!(
            "relative path \"{text}\"; expected an absolute path (starting with '/')"
        ));
    }
    if text.contains('\0') {
        return Err("path contains a NUL byte".into());
    }
    let dir = text.ends_with('/');
    let mut normalized = String::with_capacity(text.len());
    for component in text.split('/').filter(|c| !c.is_empty()) {
        if component == "." || component == ".." {
            return Err(format!(
                "path \"{text}\" contains \"{component}\"; write the path without it"
            ));
        }
        normalized.push('/');
        normalized.push_str(component);
    }
    if dir {
        normalized.push('/');
    }
    if normalized.is_empty() {
        normalized.push('/');
    }
    let dir = dir || normalized == "/";
    if normalized.len() + 1 > KEY_PATH_BYTES {
        return Err(format!(
            "path is {} bytes; at most {} are supported",
            normalized.len(),
            KEY_PATH_BYTES - 1
        ));
    }
    Ok(PathPattern {
        path: normalized,
        dir,
    })
}

/// Parses a `NAME=VALUE` policy variable given on a command line.
pub fn parse_assignment(s: &str) -> Result<(String, String), String> {
    let (name, value) = s
        .split_once('=')
        .ok_or_else(|| format!("expected NAME=VALUE, got \"{s}\""))?;
    if name.is_empty() || !name.chars().all(|c| c.is_ascii_alphanumeric() || c == '_') {
        return Err(format!("bad variable name \"{name}\""));
    }
    Ok((name.to_owned(), value.to_owned()))
}

/// Parses a duration such as `90s`, `15m`, `1h30m`, `500ms`.
pub fn parse_duration(text: &str) -> Result<Duration, String> {
    let expected = "expected a duration such as \"30s\", \"15m\", \"1h30m\" or \"500ms\"";
    let text = text.trim();
    if text.is_empty() {
        return Err(format!("empty duration; {expected}"));
    }
    let mut total = Duration::ZERO;
    let mut rest = text;
    while !rest.is_empty() {
        let digits = rest
            .find(|c: char| !c.is_ascii_digit())
            .unwrap_or(rest.len());
        if digits == 0 {
            return Err(format!("bad duration \"{text}\"; {expected}"));
        }
        let number: u64 = rest[..digits]
            .parse()
            .map_err(|_| format!("number too large in duration \"{text}\""))?;
        rest = &rest[digits..];
        let unit_len = rest
            .find(|c: char| c.is_ascii_digit())
            .unwrap_or(rest.len());
        let unit = &rest[..unit_len];
        rest = &rest[unit_len..];
        let piece = match unit {
            "ms" => Duration::from_millis(number),
            "s" => Duration::from_secs(number),
            "m" => Duration::from_secs(number.saturating_mul(60)),
            "h" => Duration::from_secs(number.saturating_mul(3600)),
            "d" => Duration::from_secs(number.saturating_mul(86_400)),
            "" => return Err(format!("duration \"{text}\" has no unit; {expected}")),
            other => {
                return Err(format!(
                    "unknown unit \"{other}\" in \"{text}\"; {expected}"
                ));
            }
        };
        total = total.saturating_add(piece);
    }
    if total.is_zero() {
        return Err(format!("duration \"{text}\" is zero; {expected}"));
    }
    Ok(total)
}

/// The host part of an endpoint.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Host {
    /// An address block: `addr/prefix` (a lone address has the full prefix).
    Cidr { addr: IpAddr, prefix: u8 },
    /// A name resolved when the envelope starts.
    Name(String),
}

/// A network endpoint rule: host and port (`None` = any port).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: Host,
    pub port: Option<u16>,
}

const ENDPOINT_FORMS: &str = "expected HOST:PORT, e.g. \"127.0.0.1:8080\", \"10.0.0.0/8:443\", \
     \"[::1]:*\" or \"api.example.com:443\"";

/// Parses an endpoint such as `127.0.0.1:8080`, `10.0.0.0/8:443`, `[::1]:*`,
/// `[2001:db8::/32]:443` or `api.github.com:443`.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let (host, port) = if let Some(rest) = text.strip_prefix('[') {
        let close = rest
            .find(']')
            .ok_or_else(|| format!("\"{text}\": missing ']'; {ENDPOINT_FORMS}"))?;
        let port = rest[close + 1..]
            .strip_prefix(':')
            .ok_or_else(|| format!("\"{text}\": missing \":PORT\" after ']'; {ENDPOINT_FORMS}"))?;
        (parse_v6_block(&rest[..close], text)?, port)
    } else {
        let colon = text
            .rfind(':')
            .ok_or_else(|| format!("\"{text}\": missing \":PORT\"; {ENDPOINT_FORMS}"))?;
        let host = &text[..colon];
        if host.contains(':') {
            return Err(format!(
                "\"{text}\": IPv6 addresses must be in brackets, e.g. \"[::1]:443\""
            ));
        }
        (parse_v4_or_name(host, text)?, &text[colon + 1..])
    };
    let port = match port {
        "*" => None,
        p => match p.parse::<u16>() {
            Ok(0) | Err(_) => {
                return Err(format!(
                    "\"{text}\": bad port \"{p}\"; expected 1-65535 or \"*\""
                ));
            }
            Ok(n) => Some(n),
        },
    };
    Ok(Endpoint { host, port })
}

/// Parses a `network.listen` entry: a local address (or block) and port, as for a connect
/// rule but never a name. `0.0.0.0` and `[::]` are the all-interfaces addresses themselves;
/// `0.0.0.0/0` and `[::/0]` allow any local address.
pub fn parse_local_endpoint(text: &str) -> Result<Endpoint, String> {
    let endpoint = parse_endpoint(text)?;
    if let Host::Name(name) = &endpoint.host {
        return Err(format!(
            "\"{text}\": a listen rule takes a local address, not a name (\"{name}\"); e.g. \
             \"127.0.0.1:8080\", \"[::1]:8080\" or \"0.0.0.0/0:8080\""
        ));
    }
    Ok(endpoint)
}

fn parse_prefix(text: &str, max: u8, whole: &str) -> Result<u8, String> {
    match text.parse::<u8>() {
        Ok(n) if n <= max => Ok(n),
        _ => Err(format!(
            "\"{whole}\": bad prefix length \"/{text}\"; expected 0-{max}"
        )),
    }
}

fn parse_v6_block(text: &str, whole: &str) -> Result<Host, String> {
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    let addr: Ipv6Addr = addr
        .parse()
        .map_err(|_| format!("\"{whole}\": bad IPv6 address \"{addr}\""))?;
    let prefix = match prefix {
        Some(p) => parse_prefix(p, 128, whole)?,
        None => 128,
    };
    check_host_bits(&addr.octets(), prefix, whole)?;
    Ok(Host::Cidr {
        addr: IpAddr::V6(addr),
        prefix,
    })
}

fn parse_v4_or_name(text: &str, whole: &str) -> Result<Host, String> {
    if text.is_empty() {
        return Err(format!("\"{whole}\": empty host; {ENDPOINT_FORMS}"));
    }
    let (addr, prefix) = match text.split_once('/') {
        Some((a, p)) => (a, Some(p)),
        None => (text, None),
    };
    if let Ok(v4) = addr.parse::<Ipv4Addr>() {
        let prefix = match prefix {
            Some(p) => parse_prefix(p, 32, whole)?,
            None => 32,
        };
        check_host_bits(&v4.octets(), prefix, whole)?;
        return Ok(Host::Cidr {
            addr: IpAddr::V4(v4),
            prefix,
        });
    }
    if prefix.is_some() || addr.chars().all(|c| c.is_ascii_digit() || c == '.') {
        return Err(format!("\"{whole}\": bad IPv4 address or CIDR \"{text}\""));
    }
    let valid_name = addr.len() <= 253
        && addr.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
                && !label.starts_with('-')
                && !label.ends_with('-')
        });
    if !valid_name {
        return Err(format!("\"{whole}\": bad host name \"{addr}\""));
    }
    Ok(Host::Name(addr.to_ascii_lowercase()))
}

/// A CIDR with bits set past its prefix (`10.0.0.1/8`) is almost always a typo.
fn check_host_bits(octets: &[u8], prefix: u8, whole: &str) -> Result<(), String> {
    for (i, byte) in octets.iter().enumerate() {
        let bit = i * 8;
        let keep = (usize::from(prefix).saturating_sub(bit)).min(8);
        let mask = if keep == 8 { 0xff } else { !(0xffu8 >> keep) };
        if byte & !mask != 0 {
            return Err(format!(
                "\"{whole}\": address has bits set beyond its /{prefix} prefix"
            ));
        }
    }
    Ok(())
}

/// An address as the kernel maps hold it: IPv4 mapped into IPv6.
pub fn mapped(addr: IpAddr) -> [u8; 16] {
    match addr {
        IpAddr::V4(v4) => v4.to_ipv6_mapped().octets(),
        IpAddr::V6(v6) => v6.octets(),
    }
}

/// The prefix length of `prefix` on `addr` once mapped into IPv6.
pub fn mapped_prefix(addr: IpAddr, prefix: u8) -> u8 {
    match addr {
        IpAddr::V4(_) => 96 + prefix,
        IpAddr::V6(_) => prefix,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn listen_rules_take_addresses_not_names() {
        let e = parse_local_endpoint("127.0.0.1:3000").expect("address");
        assert_eq!(e.port, Some(3000));
        let any = parse_local_endpoint("0.0.0.0/0:*").expect("any address, any port");
        assert_eq!(any.port, None);
        let err = parse_local_endpoint("localhost:3000").expect_err("a name");
        assert!(err.contains("not a name"), "{err}");
    }

    #[test]
    fn paths_are_absolute_normalized_and_typed() {
        assert_eq!(
            parse_path("/srv//repo/"),
            Ok(PathPattern {
                path: "/srv/repo/".into(),
                dir: true
            })
        );
        assert_eq!(
            parse_path("/srv/repo/.env"),
            Ok(PathPattern {
                path: "/srv/repo/.env".into(),
                dir: false
            })
        );
        assert_eq!(parse_path("/").map(|p| p.dir), Ok(true));
        assert!(parse_path("srv/repo").unwrap_err().contains("relative"));
        assert!(parse_path("").unwrap_err().contains("empty"));
        assert!(parse_path("/srv/../etc").unwrap_err().contains(".."));
        assert!(parse_path(&format!("/{}", "a".repeat(300))).is_err());
    }

    #[test]
    fn directory_rules_never_match_siblings_with_the_same_prefix() {
        let dir = parse_path("/srv/repo/").unwrap();
        assert!(dir.covers("/srv/repo/a"));
        assert!(dir.covers("/srv/repo"));
        assert!(!dir.covers("/srv/repository"));
        let file = parse_path("/srv/repo").unwrap();
        assert!(file.covers("/srv/repo"));
        assert!(!file.covers("/srv/repository"));
        assert_eq!(file.key_bytes(), b"/srv/repo\0");
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
        assert_eq!(parse_duration("1h30m"), Ok(Duration::from_secs(5400)));
        assert_eq!(parse_duration("500ms"), Ok(Duration::from_millis(500)));
        assert!(parse_duration("15").unwrap_err().contains("no unit"));
        assert!(parse_duration("15 minutes").is_err());
        assert!(parse_duration("0s").unwrap_err().contains("zero"));
        assert!(parse_duration("").is_err());
        assert!(parse_duration("m5").is_err());
    }

    #[test]
    fn endpoints() {
        assert_eq!(
            parse_endpoint("127.0.0.1:8080"),
            Ok(Endpoint {
                host: Host::Cidr {
                    addr: "127.0.0.1".parse().unwrap(),
                    prefix: 32
                },
                port: Some(8080)
            })
        );
        assert_eq!(
            parse_endpoint("10.0.0.0/8:443").unwrap().host,
            Host::Cidr {
                addr: "10.0.0.0".parse().unwrap(),
                prefix: 8
            }
        );
        assert_eq!(parse_endpoint("[::1]:*").unwrap().port, None);
        assert_eq!(
            parse_endpoint("[2001:db8::/32]:443").unwrap().host,
            Host::Cidr {
                addr: "2001:db8::".parse().unwrap(),
                prefix: 32
            }
        );
        assert_eq!(
            parse_endpoint("API.github.com:443").unwrap().host,
            Host::Name("api.github.com".into())
        );
        for bad in [
            "127.0.0.1",
            "127.0.0.1:0",
            "127.0.0.1:99999",
            "10.0.0.1/8:443",
            "10.0.0.0/33:443",
            "::1:443",
            "[::1:443",
            "300.1.1.1:80",
            ":80",
            "bad_name:80",
        ] {
            assert!(parse_endpoint(bad).is_err(), "{bad} should be rejected");
        }
    }

    #[test]
    fn ipv4_is_mapped_into_ipv6() {
        let v4: IpAddr = "10.1.2.3".parse().unwrap();
        assert_eq!(mapped(v4)[10..], [0xff, 0xff, 10, 1, 2, 3]);
        assert_eq!(mapped_prefix(v4, 8), 104);
    }
}
