//! The upstream resolvers the enforcer asks for a task: the host's (`/etc/resolv.conf`) or the
//! config's. Each query goes to one upstream after another over UDP, and again over TCP when
//! the answer is truncated, with a fresh random id. A datagram that is not the answer to it
//! (another id, name or type; the socket is connected, so no other source) is dropped, not
//! believed: a task must not be able to plant addresses by racing the upstream.
use std::{
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    time::Duration,
};

use tokio::{
    io::{AsyncReadExt as _, AsyncWriteExt as _},
    net::{TcpStream, UdpSocket},
    time::{Instant, timeout_at},
};

use super::{
    name::Name,
    wire::{self, Response, WireError},
};

/// Why no upstream answered.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("no upstream resolver is configured")]
    NoneConfigured,
    #[error("upstream {addr}: {source}")]
    Io {
        addr: SocketAddr,
        source: std::io::Error,
    },
    #[error("upstream {addr}: no answer within {} ms", .after.as_millis())]
    Timeout { addr: SocketAddr, after: Duration },
    #[error("upstream {addr}: {source}")]
    Wire { addr: SocketAddr, source: WireError },
}

/// The `nameserver` lines of a resolv.conf, on port 53 (others are ignored; a link-local IPv6
/// address with a scope is skipped: it names no interface here).
pub fn from_resolv_conf(text: &str) -> Vec<SocketAddr> {
    text.lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next() == Some("nameserver"))
                .then(|| words.next())
                .flatten()
        })
        .filter_map(|a| a.parse::<IpAddr>().ok())
        .map(|ip| SocketAddr::new(ip, 53))
        .collect()
}

fn random_id() -> u16 {
    let mut b = [0u8; 2];
    // SAFETY: getrandom writes at most 2 bytes into `b`.
    let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 2, 0) };
    if n != 2 {
        // getrandom cannot fail for 2 bytes once the pool is ready; a clock is the fallback.
        let t = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        return t.subsec_nanos() as u16;
    }
    u16::from_ne_bytes(b)
}

/// Asks `upstreams` in turn for `name`/`qtype`, each within `each`.
pub async fn ask(
    upstreams: &[SocketAddr],
    name: &Name,
    qtype: u16,
    each: Duration,
) -> Result<Response, UpstreamError> {
    let mut last = UpstreamError::NoneConfigured;
    for &addr in upstreams {
        match ask_one(addr, name, qtype, each).await {
            Ok(r) => return Ok(r),
            Err(e) => last = e,
        }
    }
    Err(last)
}

async fn ask_one(
    addr: SocketAddr,
    name: &Name,
    qtype: u16,
    within: Duration,
) -> Result<Response, UpstreamError> {
    let deadline = Instant::now() + within;
    let io = |source| UpstreamError::Io { addr, source };
    let timeout = || UpstreamError::Timeout {
        addr,
        after: within,
    };
    let id = random_id();
    let query = wire::upstream_query(id, name, qtype);
    let local: SocketAddr = match addr {
        SocketAddr::V4(_) => (Ipv4Addr::UNSPECIFIED, 0).into(),
        SocketAddr::V6(_) => (Ipv6Addr::UNSPECIFIED, 0).into(),
    };
    let udp = UdpSocket::bind(local).await.map_err(io)?;
    udp.connect(addr).await.map_err(io)?;
    udp.send(&query).await.map_err(io)?;
    let mut buf = vec![0u8; 4096];
    let answer = loop {
        let n = timeout_at(deadline, udp.recv(&mut buf))
            .await
            .map_err(|_| timeout())?
            .map_err(io)?;
        match wire::parse_response(&buf[..n], id, name, qtype) {
            Ok(r) => break r,
            // Not the answer to this query: dropped.
            Err(_) => continue,
        }
    };
    if !answer.truncated {
        return Ok(answer);
    }
    let mut tcp = timeout_at(deadline, TcpStream::connect(addr))
        .await
        .map_err(|_| timeout())?
        .map_err(io)?;
    let read = async {
        tcp.write_all(&wire::tcp_frame(&query)).await?;
        let len = usize::from(tcp.read_u16().await?);
        let mut msg = vec![0u8; len];
        tcp.read_exact(&mut msg).await?;
        Ok::<_, std::io::Error>(msg)
    };
    let msg = timeout_at(deadline, read)
        .await
        .map_err(|_| timeout())?
        .map_err(io)?;
    wire::parse_response(&msg, id, name, qtype)
        .map_err(|source| UpstreamError::Wire { addr, source })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nameservers_come_from_resolv_conf() {
        let text = "# comment\nsearch example\nnameserver 10.0.0.53\nnameserver ::1\n\
                    nameserver fe80::1%eth0\noptions edns0\nnameserver\n";
        assert_eq!(
            from_resolv_conf(text),
            vec![
                "10.0.0.53:53".parse::<SocketAddr>().unwrap(),
                "[::1]:53".parse().unwrap()
            ]
        );
    }

    #[test]
    fn ids_are_not_a_counter() {
        let ids: std::collections::BTreeSet<u16> = (0..64).map(|_| random_id()).collect();
        assert!(ids.len() > 48, "{ids:?}");
    }
}
