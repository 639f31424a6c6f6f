//! Why a task could not be started, standalone or through the daemon: each case with what
//! failed and its cause, and the exit status `enforcer run` gives it.
use std::io;

use crate::{
    bpf::BpfError,
    exit_code,
    kernel::{cgroup::CgroupError, landlock::LandlockError},
    policy::LoadError,
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error("enforcer run needs root: it loads eBPF programs and creates cgroups (try sudo)")]
    NotRoot,
    #[error("credentials: guarding the launcher's uid: {0}")]
    Credentials(io::Error),
    #[error("bad task name \"{0}\": use 1-64 letters, digits, '-', '_' or '.'")]
    TaskName(String),
    #[error("invalid policy:\n{0}")]
    Policy(#[from] LoadError),
    #[error(
        "--events {0}: the policy lets the task write there, so it could rewrite the record of \
         what it did; write the events outside every writable tree"
    )]
    EventsWritable(String),
    #[error("--user: {0}")]
    User(io::Error),
    /// What the kernel lacks, in the probe's words.
    #[error("{0}")]
    Kernel(String),
    #[error("{0}; the envelope needs cgroup v2")]
    NoCgroup2(String),
    #[error(
        "this kernel cannot enforce the policy as written (use mode = \"audit\" to run \
         anyway):\n  {}",
        .0.join("\n  ")
    )]
    CannotEnforce(Vec<String>),
    #[error(transparent)]
    Landlock(#[from] LandlockError),
    /// Loading the programs failed (in an LSM program, which the fallback mode avoids).
    #[error("{}{message}", if *in_lsm { "eBPF (lsm mode; --mode fallback avoids it): " } else { "" })]
    Programs { in_lsm: bool, message: String },
    #[error("eBPF: {0}")]
    Bpf(#[from] BpfError),
    #[error("maps: {0}")]
    Maps(BpfError),
    #[error("cgroup: {0}")]
    Cgroup(#[from] CgroupError),
    #[error("events: {target}: {source}")]
    Events { target: String, source: io::Error },
    #[error("ring buffer: {0}")]
    Ring(io::Error),
    /// The command does not exist (exit 127).
    #[error("{0}")]
    CommandNotFound(String),
}

impl RunError {
    pub fn exit_code(&self) -> i32 {
        match self {
            Self::CommandNotFound(_) => exit_code::NOT_FOUND,
            _ => exit_code::SETUP_FAILED,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_missing_command_is_127_and_the_rest_125_with_what_failed() {
        assert_eq!(RunError::CommandNotFound("x".into()).exit_code(), 127);
        assert_eq!(RunError::NotRoot.exit_code(), 125);
        let lsm = RunError::Programs {
            in_lsm: true,
            message: "the verifier said no".into(),
        };
        assert_eq!(
            lsm.to_string(),
            "eBPF (lsm mode; --mode fallback avoids it): the verifier said no"
        );
        let gaps = RunError::CannotEnforce(vec!["a".into(), "b".into()]);
        assert!(gaps.to_string().ends_with(":\n  a\n  b"), "{gaps}");
    }
}
