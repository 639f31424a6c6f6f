//! The control socket's protocol: one JSON object per line each way, versioned. A `start`
//! reply may carry one file descriptor (the task's Landlock ruleset) as SCM_RIGHTS.
use crate::vocab::EnforcementMode;
use std::{
    collections::BTreeMap,
    io,
    os::fd::{FromRawFd as _, OwnedFd, RawFd},
};

use serde::{Deserialize, Serialize};

/// The protocol version this build speaks.
pub const VERSION: u32 = 1;

/// Longest request or reply line accepted.
pub const MAX_LINE: usize = 1 << 20;

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Op {
    /// Start a task: the sender itself is moved into the task's cgroup, then confines itself
    /// as the reply says and execs the command.
    Start(StartRequest),
    Status,
    Tasks,
    Kill {
        task: String,
    },
    Reload,
    /// Stream events as they are written (native JSON lines) until the client goes away.
    Follow {
        #[serde(default)]
        task: Vec<String>,
        #[serde(default)]
        decision: Vec<String>,
    },
}

impl Op {
    /// The request's name, as it is spelled on the wire.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Start(_) => "start",
            Self::Status => "status",
            Self::Tasks => "tasks",
            Self::Kill { .. } => "kill",
            Self::Reload => "reload",
            Self::Follow { .. } => "follow",
        }
    }
}

/// A request line: the op's fields with `"v"` added.
pub fn encode_request(op: &Op) -> String {
    let mut value = serde_json::to_value(op).unwrap_or_default();
    if let Some(obj) = value.as_object_mut() {
        obj.insert("v".into(), VERSION.into());
    }
    value.to_string()
}

#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StartRequest {
    pub task: String,
    /// A policy name from the daemon's policy directory; `None`: the policy named like the task.
    pub policy: Option<String>,
    #[serde(default)]
    pub vars: BTreeMap<String, String>,
    pub ttl_ms: Option<u64>,
    pub intent: Option<String>,
    /// The command as given, and the executable the client resolved (absolute).
    pub command: Vec<String>,
    pub executable: String,
    /// Run as this user (only a root client may ask).
    pub user: Option<String>,
}

fn refuse() -> bool {
    true
}

/// What the client applies to itself before exec (the cgroup move is already done).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Confinement {
    pub task_id: String,
    /// A Landlock ruleset fd comes with the reply.
    pub landlock: bool,
    pub seccomp_io_uring: bool,
    /// Refuse user namespaces (absent, from an older daemon: refused).
    #[serde(default = "refuse")]
    pub seccomp_userns: bool,
    /// The client unshares a private System V IPC namespace and a cgroup namespace (root
    /// clients); otherwise seccomp refuses System V IPC.
    #[serde(default)]
    pub ipc_namespace: bool,
    pub user: Option<UserSpec>,
    pub generation: u32,
    pub mode: EnforcementMode,
    pub unenforced: Vec<String>,
}

#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct UserSpec {
    pub name: String,
    pub uid: u32,
    pub gid: u32,
    pub groups: Vec<u32>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Reply {
    pub v: u32,
    pub ok: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "serde_json::Value::is_null")]
    pub result: serde_json::Value,
}

impl Reply {
    pub fn ok(result: serde_json::Value) -> Self {
        Self {
            v: VERSION,
            ok: true,
            error: None,
            result,
        }
    }

    pub fn err(message: impl Into<String>) -> Self {
        Self {
            v: VERSION,
            ok: false,
            error: Some(message.into()),
            result: serde_json::Value::Null,
        }
    }
}

/// Parses a request line; the error is what to reply.
pub fn parse_request(line: &str) -> Result<Op, String> {
    let mut value: serde_json::Value =
        serde_json::from_str(line).map_err(|e| format!("malformed request: {e}"))?;
    let v = value
        .as_object_mut()
        .and_then(|o| o.remove("v"))
        .and_then(|v| v.as_u64());
    if v != Some(u64::from(VERSION)) {
        return Err(format!(
            "unsupported protocol version {}; this daemon speaks {VERSION}",
            v.map_or("(none)".into(), |v| v.to_string())
        ));
    }
    serde_json::from_value(value).map_err(|e| format!("malformed request: {e}"))
}

/// Sends `bytes` and, if given, one fd, in one message.
pub fn send_with_fd(sock: RawFd, bytes: &[u8], fd: Option<RawFd>) -> io::Result<usize> {
    // SAFETY: msghdr and its control buffer are built on the stack and outlive the call.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: bytes.as_ptr() as *mut _,
            iov_len: bytes.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let space = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as usize;
        let mut control = vec![0u8; space];
        if let Some(fd) = fd {
            msg.msg_control = control.as_mut_ptr().cast();
            msg.msg_controllen = space;
            let cmsg = libc::CMSG_FIRSTHDR(&msg);
            (*cmsg).cmsg_level = libc::SOL_SOCKET;
            (*cmsg).cmsg_type = libc::SCM_RIGHTS;
            (*cmsg).cmsg_len = libc::CMSG_LEN(size_of::<RawFd>() as u32) as usize;
            std::ptr::write_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>(), fd);
        }
        let n = libc::sendmsg(sock, &msg, libc::MSG_NOSIGNAL);
        if n < 0 {
            Err(io::Error::last_os_error())
        } else {
            Ok(n as usize)
        }
    }
}

/// Receives into `buf`; returns the bytes read and an fd if one came.
pub fn recv_with_fd(sock: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<OwnedFd>)> {
    // SAFETY: as in `send_with_fd`; a received fd is owned from here on.
    unsafe {
        let mut iov = libc::iovec {
            iov_base: buf.as_mut_ptr().cast(),
            iov_len: buf.len(),
        };
        let mut msg: libc::msghdr = std::mem::zeroed();
        msg.msg_iov = &mut iov;
        msg.msg_iovlen = 1;
        let space = libc::CMSG_SPACE(size_of::<RawFd>() as u32) as usize;
        let mut control = vec![0u8; space];
        msg.msg_control = control.as_mut_ptr().cast();
        msg.msg_controllen = space;
        let n = libc::recvmsg(sock, &mut msg, libc::MSG_CMSG_CLOEXEC);
        if n < 0 {
            return Err(io::Error::last_os_error());
        }
        let mut fd = None;
        let cmsg = libc::CMSG_FIRSTHDR(&msg);
        if !cmsg.is_null()
            && (*cmsg).cmsg_level == libc::SOL_SOCKET
            && (*cmsg).cmsg_type == libc::SCM_RIGHTS
        {
            let raw = std::ptr::read_unaligned(libc::CMSG_DATA(cmsg).cast::<RawFd>());
            fd = Some(OwnedFd::from_raw_fd(raw));
        }
        Ok((n as usize, fd))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_round_trip_and_bad_ones_say_why() {
        let r = parse_request(r#"{"v":1,"op":"kill","task":"t-1"}"#).unwrap();
        assert_eq!(r, Op::Kill { task: "t-1".into() });
        assert_eq!(
            parse_request(&encode_request(&Op::Status)).unwrap(),
            Op::Status
        );
        let start = Op::Start(StartRequest {
            task: "t".into(),
            command: vec!["true".into()],
            executable: "/usr/bin/true".into(),
            ..StartRequest::default()
        });
        assert_eq!(parse_request(&encode_request(&start)).unwrap(), start);
        assert!(
            parse_request(r#"{"v":2,"op":"status"}"#)
                .unwrap_err()
                .contains("unsupported protocol version 2")
        );
        assert!(
            parse_request(r#"{"v":1,"op":"format-disk"}"#)
                .unwrap_err()
                .starts_with("malformed request")
        );
        assert!(
            parse_request(r#"{"v":1,"op":"kill","task":"x","extra":1}"#)
                .unwrap_err()
                .contains("extra")
        );
        assert!(parse_request("{").unwrap_err().starts_with("malformed"));
    }
}
