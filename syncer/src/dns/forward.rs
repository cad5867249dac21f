//! Names outside `cluster.local`: the query is sent as it is to the
//! upstream resolvers (`nameserver` lines of the process's
//! `/etc/resolv.conf`, or `--dns-upstream`), in order, and the first
//! answer is relayed unchanged. UDP queries go out over UDP, TCP queries
//! over TCP, so a truncated UDP answer makes the client retry over TCP as
//! with any resolver.
//!
//! Only clients the server recognised as tenant pods get here (it is not
//! an open resolver). This module never looks at cluster data.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpStream, UdpSocket};

/// How long one upstream gets to answer.
pub const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(2);

/// The nameservers of a resolv.conf text (port 53).
pub fn nameservers(resolv_conf: &str) -> Vec<SocketAddr> {
    resolv_conf
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            (words.next()? == "nameserver").then_some(())?;
            // A scoped IPv6 address (`fe80::1%eth0`) is not usable here.
            let ip: IpAddr = words.next()?.parse().ok()?;
            Some(SocketAddr::new(ip, 53))
        })
        .collect()
}

/// The upstreams of this machine (`/etc/resolv.conf`; none if unreadable).
pub fn system_nameservers() -> Vec<SocketAddr> {
    std::fs::read_to_string("/etc/resolv.conf")
        .map(|s| nameservers(&s))
        .unwrap_or_default()
}

/// The answer of the first upstream that gives one to `query` (raw
/// message bytes), over TCP when `tcp`; `None` when none did.
pub async fn forward(upstreams: &[SocketAddr], query: &[u8], tcp: bool) -> Option<Vec<u8>> {
    for upstream in upstreams {
        let attempt = if tcp {
            tokio::time::timeout(UPSTREAM_TIMEOUT, over_tcp(*upstream, query)).await
        } else {
            tokio::time::timeout(UPSTREAM_TIMEOUT, over_udp(*upstream, query)).await
        };
        match attempt {
            Ok(Ok(answer)) => return Some(answer),
            Ok(Err(e)) => tracing::debug!(%upstream, error = %e, "DNS upstream failed"),
            Err(_) => tracing::debug!(%upstream, "DNS upstream timed out"),
        }
    }
    None
}

async fn over_udp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let local: IpAddr = if upstream.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let socket = UdpSocket::bind(SocketAddr::new(local, 0)).await?;
    socket.connect(upstream).await?;
    socket.send(query).await?;
    let mut buf = vec![0u8; 65535];
    loop {
        let n = socket.recv(&mut buf).await?;
        // Only the answer to this query (same id) counts.
        if n >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            buf.truncate(n);
            return Ok(buf);
        }
    }
}

async fn over_tcp(upstream: SocketAddr, query: &[u8]) -> std::io::Result<Vec<u8>> {
    let mut stream = TcpStream::connect(upstream).await?;
    let len = u16::try_from(query.len()).map_err(std::io::Error::other)?;
    stream.write_all(&len.to_be_bytes()).await?;
    stream.write_all(query).await?;
    let len = stream.read_u16().await? as usize;
    let mut buf = vec![0u8; len];
    stream.read_exact(&mut buf).await?;
    Ok(buf)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_resolv_conf() {
        let conf = "# x\nsearch example.com\nnameserver 10.96.0.10\nnameserver fd00::a\nnameserver fe80::1%eth0\noptions ndots:5\n";
        assert_eq!(
            nameservers(conf),
            vec![
                "10.96.0.10:53".parse::<SocketAddr>().unwrap(),
                "[fd00::a]:53".parse().unwrap()
            ]
        );
    }
}
