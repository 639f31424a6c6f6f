//! What the enforcer needs from the kernel beyond eBPF: BTF offsets, Landlock, seccomp,
//! cgroups, process credentials, and the probes that say what this kernel can do.
pub mod btf;
pub mod cgroup;
pub mod confine;
pub mod creds;
pub mod landlock;
pub mod probe;
pub mod seccomp;
