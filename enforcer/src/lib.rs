//! enforcer: per-task envelopes for AI-agent processes, checked in the kernel.
//!
//! - [`policy`]: TOML policies, parsed, validated and compiled into kernel map entries (pure).
//! - [`bpf`]: loading the eBPF programs and the maps they share.
//! - [`kernel`]: Landlock, seccomp, cgroups, credentials, BTF and feature probes.
//! - [`daemon`]: the long-running enforcer: pinned programs, control socket, hot reload.
//! - [`envelope`]: one task, standalone: setup, confinement, monitoring, teardown.
//! - [`runtime`]: what both share of a task's life: install, ending, `task_end`, loading.
//! - [`events`]: kernel records to attributed JSON lines.
//! - [`vocab`]: the enforcement mode, decisions and who enforced them, as enums.
//! - [`exit_code`]: the statuses `enforcer run` exits with when the command did not decide.
pub mod bpf;
pub mod daemon;
pub mod dns;
pub mod envelope;
pub mod events;
pub mod exit_code;
pub mod kernel;
pub mod policy;
pub mod runtime;
pub mod sinks;
pub mod vocab;
