//! HTTP POST of event batches: newline-delimited JSON, or Splunk HEC envelopes. HTTP/1.1 by
//! hand (one request per connection, `Connection: close`), so a batch is delivered exactly
//! when the receiver answers 2xx.
use std::io::Write as _;

/// `http[s]://host[:port][/path]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Endpoint {
    pub host: String,
    pub port: u16,
    pub path: String,
    /// `https://`.
    pub tls: bool,
}

impl Endpoint {
    pub fn parse(url: &str) -> Result<Self, String> {
        let (rest, tls) = if let Some(r) = url.strip_prefix("http://") {
            (r, false)
        } else if let Some(r) = url.strip_prefix("https://") {
            (r, true)
        } else {
            return Err(format!("{url}: expected an http:// or https:// URL"));
        };
        let (authority, path) = match rest.find('/') {
            Some(i) => (&rest[..i], &rest[i..]),
            None => (rest, "/"),
        };
        let (host, port) = match authority.rsplit_once(':') {
            Some((h, p)) if !h.ends_with(']') || authority.starts_with('[') => (
                h,
                p.parse::<u16>()
                    .map_err(|_| format!("{url}: bad port \"{p}\""))?,
            ),
            _ => (authority, if tls { 443 } else { 80 }),
        };
        if host.is_empty() {
            return Err(format!("{url}: no host"));
        }
        Ok(Self {
            host: host.trim_start_matches('[').trim_end_matches(']').into(),
            port,
            path: path.into(),
            tls,
        })
    }

    pub fn address(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

/// One POST. `gzip` compresses the body (`Content-Encoding: gzip`).
pub fn request(
    ep: &Endpoint,
    body: &[u8],
    content_type: &str,
    headers: &[(String, String)],
    gzip: bool,
) -> std::io::Result<Vec<u8>> {
    let body = if gzip {
        let mut enc = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        enc.write_all(body)?;
        enc.finish()?
    } else {
        body.to_vec()
    };
    let mut head = format!(
        "POST {path} HTTP/1.1\r\nHost: {host}\r\nUser-Agent: enforcer/{v}\r\n\
         Content-Type: {content_type}\r\nContent-Length: {len}\r\nConnection: close\r\n",
        path = ep.path,
        host = ep.address(),
        v = env!("CARGO_PKG_VERSION"),
        len = body.len(),
    );
    if gzip {
        head.push_str("Content-Encoding: gzip\r\n");
    }
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let mut out = head.into_bytes();
    out.extend_from_slice(&body);
    Ok(out)
}

/// The status code of a response's first line.
pub fn status(response: &[u8]) -> Option<u16> {
    let line = response.split(|b| *b == b'\n').next()?;
    let line = std::str::from_utf8(line).ok()?;
    let mut parts = line.split_whitespace();
    if !parts.next()?.starts_with("HTTP/1.") {
        return None;
    }
    parts.next()?.parse().ok()
}

/// One event in a Splunk HEC envelope (`/services/collector/event`).
pub fn hec(event_json: &str, unix_ms: i128, host: &str, sourcetype: &str) -> String {
    let event: serde_json::Value =
        serde_json::from_str(event_json).unwrap_or_else(|_| event_json.into());
    serde_json::json!({
        "time": format!("{}.{:03}", unix_ms / 1000, unix_ms % 1000),
        "host": host,
        "source": "enforcer",
        "sourcetype": sourcetype,
        "event": event,
    })
    .to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    #[test]
    fn http_and_https_urls_parse_and_others_are_refused() {
        let e = Endpoint::parse("http://127.0.0.1:8088/services/collector/event").unwrap();
        assert_eq!(e.address(), "127.0.0.1:8088");
        assert_eq!(e.path, "/services/collector/event");
        let e = Endpoint::parse("http://siem.example").unwrap();
        assert_eq!((e.port, e.path.as_str()), (80, "/"));
        let e = Endpoint::parse("http://[::1]:9000/x").unwrap();
        assert_eq!(e.address(), "[::1]:9000");
        let e = Endpoint::parse("https://siem.example/in").unwrap();
        assert!(e.tls);
        assert_eq!(e.address(), "siem.example:443");
        assert!(Endpoint::parse("ftp://x").is_err());
        assert!(Endpoint::parse("http://x:notaport/").is_err());
    }

    #[test]
    fn a_gzip_request_carries_the_compressed_length_and_round_trips() {
        let ep = Endpoint::parse("http://h:1/p").unwrap();
        let body = b"{\"a\":1}\n{\"a\":2}\n".repeat(50);
        let token = vec![("Authorization".to_owned(), "Splunk t0k".to_owned())];
        let req = request(&ep, &body, "application/x-ndjson", &token, true).unwrap();
        let split = req.windows(4).position(|w| w == b"\r\n\r\n").unwrap();
        let head = String::from_utf8_lossy(&req[..split]).into_owned();
        let payload = &req[split + 4..];
        assert!(
            head.starts_with("POST /p HTTP/1.1\r\nHost: h:1\r\n"),
            "{head}"
        );
        assert!(head.contains(&format!("Content-Length: {}", payload.len())));
        assert!(head.contains("Content-Encoding: gzip"));
        assert!(head.contains("Authorization: Splunk t0k"));
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(payload)
            .read_to_end(&mut out)
            .unwrap();
        assert_eq!(out, body);
    }

    #[test]
    fn statuses_and_hec_envelopes() {
        assert_eq!(status(b"HTTP/1.1 200 OK\r\n\r\n"), Some(200));
        assert_eq!(status(b"HTTP/1.0 503 Busy\r\n"), Some(503));
        assert_eq!(status(b"garbage"), None);
        let h: serde_json::Value = serde_json::from_str(&hec(
            "{\"op\":\"open\"}",
            1_700_000_000_123,
            "h",
            "enforcer:native",
        ))
        .unwrap();
        assert_eq!(h["time"], "1700000000.123");
        assert_eq!(h["event"]["op"], "open");
        assert_eq!(h["sourcetype"], "enforcer:native");
    }
}
