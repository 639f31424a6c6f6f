//! `[[sink]]` tables of the daemon's config: where events go besides `[daemon] events`.
use std::path::PathBuf;

use serde::Deserialize;

use super::{filter::Filter, http::Endpoint, syslog, tls::TlsFiles};
use crate::events::Format;

/// What a sink is.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Kind {
    File {
        path: PathBuf,
        /// Rotate when the file reaches this size (0: never).
        max_bytes: u64,
        /// Rotated files kept (`path.1` … `path.N`).
        keep: u32,
    },
    Stdout,
    Stderr,
    Syslog {
        tcp: bool,
        /// TLS (RFC 5425) over the TCP connection.
        tls: Option<TlsFiles>,
        address: String,
        facility: u8,
        app_name: String,
    },
    Http {
        endpoint: Endpoint,
        /// Splunk HEC mode: `Authorization: Splunk <token>` and HEC envelopes.
        hec_token: Option<String>,
        gzip: bool,
        headers: Vec<(String, String)>,
        /// Used for https:// URLs.
        tls: TlsFiles,
    },
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SinkConfig {
    pub name: String,
    pub kind: Kind,
    pub format: Format,
    pub filter: Filter,
    /// Network sinks: the on-disk spool's bound.
    pub spool_bytes: u64,
    /// Network sinks: lines per send.
    pub batch: usize,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RawSink {
    name: String,
    #[serde(rename = "type")]
    kind: String,
    format: Option<String>,
    #[serde(default)]
    filter: Filter,
    // file
    path: Option<PathBuf>,
    max_bytes: Option<String>,
    keep: Option<u32>,
    // syslog
    address: Option<String>,
    transport: Option<String>,
    facility: Option<String>,
    app_name: Option<String>,
    // http
    url: Option<String>,
    hec_token: Option<String>,
    gzip: Option<bool>,
    #[serde(default)]
    headers: std::collections::BTreeMap<String, String>,
    // TLS: syslog over tls, https
    ca_file: Option<PathBuf>,
    client_cert: Option<PathBuf>,
    client_key: Option<PathBuf>,
    server_name: Option<String>,
    // network sinks
    spool_bytes: Option<String>,
    batch: Option<usize>,
}

/// `123`, `64K`, `100M`, `2G` (powers of 1024).
pub fn parse_size(s: &str) -> Result<u64, String> {
    let s = s.trim();
    let (num, mult) = match s.char_indices().last() {
        Some((i, 'K' | 'k')) => (&s[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&s[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&s[..i], 1 << 30),
        _ => (s, 1),
    };
    num.trim()
        .parse::<u64>()
        .ok()
        .and_then(|n| n.checked_mul(mult))
        .ok_or_else(|| format!("size \"{s}\": expected a number with K, M or G"))
}

impl RawSink {
    /// Checks the fields against the sink's type; every error names the sink.
    pub fn build(self) -> Result<SinkConfig, String> {
        let name = self.name.clone();
        let bad = |m: String| format!("sink \"{name}\": {m}");
        if name.is_empty()
            || !name
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
        {
            return Err(bad("a name of letters, digits, - and _ is needed".into()));
        }
        self.filter.check().map_err(&bad)?;
        let format = Format::parse(self.format.as_deref().unwrap_or("native")).map_err(&bad)?;
        let unused = |fields: &[(&str, bool)]| -> Result<(), String> {
            match fields.iter().find(|(_, set)| *set) {
                Some((f, _)) => Err(bad(format!("`{f}` does not apply to a {} sink", self.kind))),
                None => Ok(()),
            }
        };
        let file_fields = [
            ("path", self.path.is_some()),
            ("max_bytes", self.max_bytes.is_some()),
            ("keep", self.keep.is_some()),
        ];
        let syslog_fields = [
            ("address", self.address.is_some()),
            ("transport", self.transport.is_some()),
            ("facility", self.facility.is_some()),
            ("app_name", self.app_name.is_some()),
        ];
        let http_fields = [
            ("url", self.url.is_some()),
            ("hec_token", self.hec_token.is_some()),
            ("gzip", self.gzip.is_some()),
            ("headers", !self.headers.is_empty()),
        ];
        let tls_fields = [
            ("ca_file", self.ca_file.is_some()),
            ("client_cert", self.client_cert.is_some()),
            ("client_key", self.client_key.is_some()),
            ("server_name", self.server_name.is_some()),
        ];
        let tls_files = TlsFiles {
            ca_file: self.ca_file.clone(),
            client_cert: self.client_cert.clone(),
            client_key: self.client_key.clone(),
            server_name: self.server_name.clone(),
        };
        let net_fields = [
            ("spool_bytes", self.spool_bytes.is_some()),
            ("batch", self.batch.is_some()),
        ];
        let kind = match self.kind.as_str() {
            "file" => {
                unused(&syslog_fields)?;
                unused(&http_fields)?;
                unused(&net_fields)?;
                unused(&tls_fields)?;
                Kind::File {
                    path: self
                        .path
                        .clone()
                        .ok_or_else(|| bad("a file sink needs `path`".into()))?,
                    max_bytes: self
                        .max_bytes
                        .as_deref()
                        .map(parse_size)
                        .transpose()
                        .map_err(&bad)?
                        .unwrap_or(0),
                    keep: self.keep.unwrap_or(5),
                }
            }
            "stdout" | "stderr" => {
                unused(&file_fields)?;
                unused(&syslog_fields)?;
                unused(&http_fields)?;
                unused(&net_fields)?;
                unused(&tls_fields)?;
                if self.kind == "stdout" {
                    Kind::Stdout
                } else {
                    Kind::Stderr
                }
            }
            "syslog" => {
                unused(&file_fields)?;
                unused(&http_fields)?;
                let (tcp, tls) = match self.transport.as_deref().unwrap_or("udp") {
                    "udp" => (false, None),
                    "tcp" => (true, None),
                    "tls" => (true, Some(tls_files.clone())),
                    t => {
                        return Err(bad(format!("transport \"{t}\": expected udp, tcp or tls")));
                    }
                };
                if tls.is_none() {
                    unused(&tls_fields).map_err(|e| format!("{e} (only with transport tls)"))?;
                }
                let facility_name = self.facility.as_deref().unwrap_or("authpriv");
                Kind::Syslog {
                    tcp,
                    tls,
                    address: self
                        .address
                        .clone()
                        .ok_or_else(|| bad("a syslog sink needs `address` (host:port)".into()))?,
                    facility: syslog::facility(facility_name)
                        .ok_or_else(|| bad(format!("unknown facility \"{facility_name}\"")))?,
                    app_name: self.app_name.clone().unwrap_or_else(|| "enforcer".into()),
                }
            }
            "http" => {
                unused(&file_fields)?;
                unused(&syslog_fields)?;
                let url = self
                    .url
                    .as_deref()
                    .ok_or_else(|| bad("an http sink needs `url`".into()))?;
                let endpoint = Endpoint::parse(url).map_err(&bad)?;
                if !endpoint.tls {
                    unused(&tls_fields).map_err(|e| format!("{e} (only with https://)"))?;
                }
                Kind::Http {
                    endpoint,
                    hec_token: self.hec_token.clone(),
                    gzip: self.gzip.unwrap_or(false),
                    headers: self.headers.clone().into_iter().collect(),
                    tls: tls_files.clone(),
                }
            }
            other => {
                return Err(bad(format!(
                    "type \"{other}\": expected file, stdout, stderr, syslog or http"
                )));
            }
        };
        Ok(SinkConfig {
            name: self.name,
            kind,
            format,
            filter: self.filter,
            spool_bytes: self
                .spool_bytes
                .as_deref()
                .map(parse_size)
                .transpose()
                .map_err(&bad)?
                .unwrap_or(64 << 20),
            batch: self.batch.unwrap_or(500).clamp(1, 10_000),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sink(toml_text: &str) -> Result<SinkConfig, String> {
        let raw: RawSink = toml::from_str(toml_text).map_err(|e| e.to_string())?;
        raw.build()
    }

    #[test]
    fn sizes() {
        assert_eq!(parse_size("100").unwrap(), 100);
        assert_eq!(parse_size("64K").unwrap(), 65_536);
        assert_eq!(parse_size("10M").unwrap(), 10 << 20);
        assert_eq!(parse_size("1G").unwrap(), 1 << 30);
        assert!(parse_size("ten").is_err());
    }

    #[test]
    fn each_type_takes_its_own_fields() {
        let s = sink("name = \"f\"\ntype = \"file\"\npath = \"/var/log/e.jsonl\"\nmax_bytes = \"10M\"\nkeep = 3\n").unwrap();
        assert_eq!(
            s.kind,
            Kind::File {
                path: "/var/log/e.jsonl".into(),
                max_bytes: 10 << 20,
                keep: 3
            }
        );
        let s = sink("name = \"s\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\ntransport = \"tcp\"\nformat = \"ocsf\"\n[filter]\ndecision = [\"deny\"]\n").unwrap();
        assert!(matches!(
            s.kind,
            Kind::Syslog {
                tcp: true,
                facility: 10,
                ..
            }
        ));
        assert_eq!(s.format, Format::Ocsf);
        assert_eq!(s.filter.decision, vec!["deny".to_owned()]);
        let s = sink("name = \"h\"\ntype = \"http\"\nurl = \"http://127.0.0.1:8088/services/collector/event\"\nhec_token = \"t\"\ngzip = true\n").unwrap();
        assert!(matches!(s.kind, Kind::Http { gzip: true, .. }));
    }

    #[test]
    fn misplaced_or_missing_fields_and_tls_are_clear_errors() {
        let e = sink("name = \"f\"\ntype = \"file\"\npath = \"/x\"\nurl = \"http://h/\"\n")
            .unwrap_err();
        assert!(e.contains("`url` does not apply to a file sink"), "{e}");
        let e = sink("name = \"s\"\ntype = \"syslog\"\n").unwrap_err();
        assert!(e.contains("needs `address`"), "{e}");
        let s = sink(
            "name = \"s\"\ntype = \"syslog\"\naddress = \"h:6514\"\ntransport = \"tls\"\n\
             ca_file = \"/ca.pem\"\n",
        )
        .unwrap();
        assert!(matches!(s.kind, Kind::Syslog { tls: Some(_), .. }));
        let e = sink("name = \"s\"\ntype = \"syslog\"\naddress = \"h:1\"\nca_file = \"/ca.pem\"\n")
            .unwrap_err();
        assert!(e.contains("only with transport tls"), "{e}");
        let e =
            sink("name = \"h\"\ntype = \"http\"\nurl = \"http://h/\"\nclient_cert = \"/c.pem\"\n")
                .unwrap_err();
        assert!(e.contains("only with https://"), "{e}");
        let e = sink("name = \"x\"\ntype = \"kafka\"\n").unwrap_err();
        assert!(
            e.contains("expected file, stdout, stderr, syslog or http"),
            "{e}"
        );
        let e = sink("name = \"x\"\ntype = \"stdout\"\n[filter]\ndecision = [\"denied\"]\n")
            .unwrap_err();
        assert!(e.contains("unknown decision"), "{e}");
        let e = sink("name = \"x\"\ntype = \"stdout\"\ncolour = 1\n").unwrap_err();
        assert!(e.contains("unknown field"), "{e}");
    }
}
