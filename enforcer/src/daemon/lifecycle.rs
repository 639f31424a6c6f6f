//! A task's life in the daemon: started for a peer, watched (exit, TTL, limits, kernel kills),
//! ended, torn down to nothing, and adopted again after a daemon restart.
use crate::vocab::Op;
use std::{os::fd::OwnedFd, path::PathBuf, time::Duration};

use aya::maps::{MapData, RingBuf};
use enforcer_common::{
    TaskEntry,
    exit_status::{self, Ended},
};
use serde_json::json;

use super::{
    authz::Peer,
    core::Core,
    protocol::{Confinement, StartRequest, UserSpec},
};
use crate::{
    envelope::setup,
    events::{
        record::{Record, TaskContext},
        time,
    },
    kernel::{cgroup::TaskCgroup, confine},
    policy,
    runtime::{
        install::{Place, install},
        task::{Saved, Task},
    },
};

/// Why the daemon refused to start a task (the reply to the client says it).
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// A bad task name, or a policy that cannot be set up on this host.
    #[error("{0}")]
    Setup(#[from] crate::envelope::RunError),
    #[error("no policy \"{name}\" in {dir}; policies you may use: {allowed}")]
    NoPolicy {
        name: String,
        dir: String,
        allowed: String,
    },
    #[error("{0}: no such executable")]
    NoExecutable(String),
    #[error("--user needs a root client (the command runs as you)")]
    UserNeedsRoot,
    #[error("--user: {0}")]
    User(std::io::Error),
    #[error("invalid policy:\n{0}")]
    Policy(#[from] policy::PolicyErrors),
    #[error("{0} tasks are running: no slot left")]
    NoSlot(usize),
    #[error(transparent)]
    Cgroup(#[from] crate::kernel::cgroup::CgroupError),
    #[error("maps: {0}")]
    Maps(#[from] crate::bpf::BpfError),
    #[error("moving you into the task's cgroup: {0}")]
    Launcher(crate::kernel::cgroup::CgroupError),
}

/// `IN_MODIFY` on `cgroup.events`: `populated` changed.
const CGROUP_EVENTS_MASK: u32 = libc::IN_MODIFY;

impl Core {
    /// Creates the envelope for `peer` and moves the peer into it. The reply tells the peer
    /// how to confine itself before it execs the command; the fd is its Landlock ruleset.
    pub fn start(
        &mut self,
        peer: &Peer,
        req: StartRequest,
    ) -> Result<(Confinement, Option<OwnedFd>), StartError> {
        setup::check_task_name(&req.task)?;
        let policy_name = req.policy.clone().unwrap_or_else(|| req.task.clone());
        let Some(pf) = self.policies.by_name.get(&policy_name).cloned() else {
            let mut names: Vec<&str> = self
                .policies
                .by_name
                .keys()
                .map(String::as_str)
                .filter(|n| {
                    super::authz::may_start(&self.config, &super::authz::SystemIds, peer, n)
                })
                .collect();
            names.sort_unstable();
            return Err(StartError::NoPolicy {
                name: policy_name,
                dir: self.config.policies.display().to_string(),
                allowed: if names.is_empty() {
                    "none".into()
                } else {
                    names.join(", ")
                },
            });
        };
        let executable = PathBuf::from(&req.executable);
        if !executable.is_absolute() || !executable.is_file() {
            return Err(StartError::NoExecutable(req.executable));
        }
        let user = match &req.user {
            Some(_) if !peer.is_root() => {
                return Err(StartError::UserNeedsRoot);
            }
            Some(u) => Some(confine::task_user(u).map_err(StartError::User)?),
            None => None,
        };
        let vars: policy::Vars = req.vars.clone().into_iter().collect();
        let parsed = self.parsed.get(&pf, &vars)?;
        let plan = setup::plan(parsed, executable.clone(), user.clone(), self.probe.clone())?;
        let slot = self
            .free_slot()
            .ok_or_else(|| StartError::NoSlot(self.rt.tasks.len()))?;
        let rules = self.next_rules();
        // A client that is not root cannot give its task a private IPC namespace.
        let ipc_namespace = peer.is_root();
        let mut unenforced_here = Vec::new();
        if !ipc_namespace {
            unenforced_here.push(
                "System V IPC: refused to the task (seccomp, EPERM) without an event, and no \
                 cgroup namespace: a client that is not root cannot give it private IPC and \
                 cgroup namespaces"
                    .to_owned(),
            );
        }

        let task_id = format!("{}-{}", req.task, self.next_task());
        let cgroup = TaskCgroup::create_in(&self.root, &task_id)?;
        let ttl = req
            .ttl_ms
            .map(Duration::from_millis)
            .or(plan.policy.limits.ttl);
        let now = time::boot_ns();
        let at = Place {
            slot,
            rules,
            cgroup_id: cgroup.id,
            generation: pf.generation,
        };
        let installed = match install(&mut self.rt.maps, &plan, at, ttl, now) {
            Ok(i) => i,
            Err(e) => {
                let _ = cgroup.remove();
                return Err(e.into());
            }
        };
        let (flags, deadline) = (installed.entry.flags, installed.limits.deadline_ns);
        let mut unenforced = installed.unenforced;
        unenforced.extend(unenforced_here);
        let saved = Saved {
            task: req.task.clone(),
            task_id: task_id.clone(),
            intent: req.intent.clone(),
            policy_name: pf.name.clone(),
            policy_file: pf.file.clone(),
            policy_text: pf.text.clone(),
            vars: req.vars.clone(),
            generation: pf.generation,
            slot,
            rules,
            flags,
            cgroup: cgroup.path.clone(),
            cgroup_id: cgroup.id,
            pid: peer.pid as u32,
            owner_uid: peer.uid,
            command: req.command.clone(),
            executable: executable.clone(),
            user: req.user.clone(),
            started_unix_ns: time::now_unix_ns(),
            started_boot_ns: now,
            deadline_boot_ns: deadline,
            mode: self.mode(),
            unenforced: unenforced.clone(),
        };
        let ctx = saved.context(&plan.policy, self.rt.outside.boot_to_unix_ns);
        let command: Vec<std::ffi::OsString> = req.command.iter().map(Into::into).collect();
        let mut details = setup::start_details(&command, &plan, &cgroup, ttl, flags);
        if let Some(obj) = details.as_object_mut() {
            obj.insert(
                "launcher".into(),
                json!({ "pid": peer.pid, "uid": peer.uid, "gid": peer.gid }),
            );
            obj.insert("via".into(), json!("daemon"));
        }
        // Saved before anything says the task started: a daemon killed from here on adopts it.
        if let Err(e) = saved.store(&self.config.state_dir) {
            eprintln!("enforcer: warning: cannot save task {task_id}: {e}");
        }
        // Written once the reply is on its way (`emit_deferred`): the launcher does not wait
        // for the record, and the task's own events are drained after it.
        self.deferred.push(Record::lifecycle(
            &ctx,
            Op::TaskStart,
            peer.pid as u32,
            details,
        ));

        // The command keeps the launcher's pid (it execs in place, its parent is the caller's
        // shell): the programs note that pid's wait status as it exits, for `task_end`.
        if let Err(e) = self.rt.maps.watch_exit(peer.pid as u32) {
            eprintln!("enforcer: warning: task {task_id}: its exit status will not be known: {e}");
        }
        // The launcher joins the envelope itself: from here on every checked operation of it
        // and of everything it execs is the task's.
        if let Err(e) = cgroup.add_pid(peer.pid as u32) {
            // Its start is said before its end.
            self.emit_deferred();
            let mut task = self.make_task(saved, cgroup, plan.policy, ctx);
            task.ending = Some(format!(
                "the launcher could not be moved into the task: {e}"
            ));
            self.rt.insert(task);
            self.finalize(&task_id);
            return Err(StartError::Launcher(e));
        }
        let confinement = Confinement {
            task_id: task_id.clone(),
            landlock: plan.ruleset.is_some(),
            seccomp_io_uring: !plan.policy.allow_io_uring,
            seccomp_userns: !plan.policy.allow_user_namespaces,
            ipc_namespace,
            user: user.map(|u| UserSpec {
                name: u.name,
                uid: u.uid,
                gid: u.gid,
                groups: u.groups,
            }),
            generation: pf.generation,
            mode: self.mode(),
            unenforced,
        };
        let fd = plan.ruleset.map(crate::kernel::landlock::Ruleset::into_fd);
        let task = self.make_task(saved, cgroup, plan.policy, ctx);
        self.rt.insert(task);
        Ok((confinement, fd))
    }

    fn make_task(
        &mut self,
        saved: Saved,
        cgroup: TaskCgroup,
        policy: policy::Policy,
        ctx: TaskContext,
    ) -> Task {
        let watch = self
            .inotify
            .watch(&cgroup.path.join("cgroup.events"), CGROUP_EVENTS_MASK)
            .ok();
        Task {
            saved,
            cgroup,
            policy,
            previous: None,
            ctx,
            ending: None,
            watch,
            killed: Vec::new(),
        }
    }

    /// Ends a task: kills whatever is left of it. The teardown follows when its cgroup is empty.
    pub fn end_task(&mut self, task_id: &str, why: String) {
        self.rt.end_task(task_id, why);
    }

    /// Tears an ended (empty) task down: map entries, cgroup, state; one `task_end`.
    pub fn finalize(&mut self, task_id: &str) {
        let Some(pid) = self.rt.tasks.get(task_id).map(|t| t.saved.pid) else {
            return;
        };
        let exit = exit_details(self.rt.maps.take_exit(pid), self.probe.offsets.is_ok());
        if let Some(task) = self.rt.finalize(task_id, exit, Vec::new()) {
            if let Some(wd) = task.watch {
                self.inotify.unwatch(wd);
            }
            Saved::remove(&self.config.state_dir, task_id);
        }
    }

    /// Ends the tasks whose TTL passed and tears down the ones that are empty.
    pub fn tick(&mut self) {
        for id in self.rt.expired(time::boot_ns()) {
            self.rt.ttl_expired(&id, "limit ttl exceeded");
        }
        self.check_populated(None);
    }

    /// Tears down tasks (those watched by `wds`, or all) whose cgroup is empty.
    pub fn check_populated(&mut self, wds: Option<&[i32]>) {
        let empty: Vec<String> = self
            .rt
            .tasks
            .values()
            .filter(|t| wds.is_none_or(|w| t.watch.is_some_and(|wd| w.contains(&wd))))
            .filter(|t| !t.cgroup.populated())
            .map(|t| t.saved.task_id.clone())
            .collect();
        for id in empty {
            self.finalize(&id);
        }
    }

    /// Writes what the kernel reported, attributed to each task and generation, and ends
    /// the tasks the kernel ended. At most a batch per call: a task producing events as fast
    /// as they are read must not starve requests, reloads and timers (the next tick reads on).
    pub fn drain(&mut self, ring: &mut RingBuf<MapData>) {
        const BATCH: usize = 4096;
        if let Some(d) = self.rt.drain(ring, BATCH) {
            self.emit_daemon(Op::EventsDropped, d);
        }
    }

    /// `enforcer kill TASK` (a task id, or a task name if only one task has it).
    pub fn kill_request(
        &mut self,
        peer: &Peer,
        admin: bool,
        which: &str,
    ) -> Result<serde_json::Value, String> {
        let visible = |t: &Task| admin || t.saved.owner_uid == peer.uid;
        let matches: Vec<String> = self
            .rt
            .tasks
            .values()
            .filter(|t| visible(t) && (t.saved.task_id == which || t.saved.task == which))
            .map(|t| t.saved.task_id.clone())
            .collect();
        match matches.as_slice() {
            [] => Err(format!("no task \"{which}\" that you may kill")),
            [id] => {
                self.end_task(id, format!("killed by uid {} (enforcer kill)", peer.uid));
                Ok(json!({ "killed": id }))
            }
            many => Err(format!(
                "\"{which}\" names {} tasks: {}; give a task id",
                many.len(),
                many.join(", ")
            )),
        }
    }

    /// Takes over the tasks a previous daemon left (its pinned maps already opened).
    pub fn adopt(&mut self, saved: Vec<Saved>) {
        for s in saved {
            let cgroup = match TaskCgroup::open(s.cgroup.clone()) {
                Ok(c) if c.id == s.cgroup_id => c,
                _ => {
                    // Gone with its processes while no daemon ran: nothing left to kill.
                    self.rt.maps.remove_task(s.slot, s.rules, s.cgroup_id);
                    Saved::remove(&self.config.state_dir, &s.task_id);
                    let ctx = s.context(&policy::Policy::empty(), self.rt.outside.boot_to_unix_ns);
                    let r = Record::lifecycle(
                        &ctx,
                        Op::TaskEnd,
                        s.pid,
                        json!({
                            "reason": "its cgroup was gone when the daemon restarted",
                        }),
                    );
                    self.rt.emitter.emit(&r);
                    continue;
                }
            };
            let vars: policy::Vars = s.vars.clone().into_iter().collect();
            let mut policy = policy::parse(&s.policy_file, &s.policy_text, &vars)
                .unwrap_or_else(|_| policy::Policy::empty());
            policy.add_resolved_paths(|p| {
                std::fs::canonicalize(p)
                    .ok()
                    .map(|r| r.display().to_string())
            });
            let ctx = s.context(&policy, self.rt.outside.boot_to_unix_ns);
            let task = self.make_task(s, cgroup, policy, ctx);
            self.rt.insert(task);
            self.adopted += 1;
        }
        // Entries no saved task explains: refused everything already (fail closed); remove
        // them and end what runs there.
        let known: Vec<u64> = self.rt.by_cgroup.keys().copied().collect();
        let orphans: Vec<(u64, TaskEntry)> = self
            .rt
            .maps
            .tasks
            .iter()
            .filter_map(Result::ok)
            .filter(|(id, _)| !known.contains(id))
            .collect();
        for (cgroup_id, entry) in orphans {
            self.rt.maps.remove_task(entry.slot, entry.rules, cgroup_id);
            eprintln!("enforcer: removed the entry of unknown task cgroup {cgroup_id}");
        }
    }

    /// After adoption and the first drain: end what finished or expired while no daemon ran.
    pub fn settle_adopted(&mut self) {
        let now = time::boot_ns();
        let ids: Vec<String> = self.rt.tasks.keys().cloned().collect();
        for id in ids {
            let Some(t) = self.rt.tasks.get(&id) else {
                continue;
            };
            if !t.cgroup.populated() {
                let expired = t.saved.deadline_boot_ns != 0 && now > t.saved.deadline_boot_ns;
                if let Some(t) = self.rt.tasks.get_mut(&id) {
                    t.ending = Some(
                        if expired {
                            "limit ttl exceeded (while the daemon was down; the kernel enforced it)"
                        } else {
                            "exited while the daemon was down"
                        }
                        .into(),
                    );
                }
                self.finalize(&id);
            } else if t.saved.deadline_boot_ns != 0 && now > t.saved.deadline_boot_ns {
                self.rt
                    .ttl_expired(&id, "limit ttl exceeded (while the daemon was down)");
            }
        }
    }
}

/// `exit_code` and `signal` as `enforcer run` reports them standalone, from the wait status the
/// programs saw (`EXITS`); when none was seen, both are null and `exit_status` says why.
fn exit_details(status: Option<i32>, offsets_known: bool) -> serde_json::Value {
    match status.and_then(exit_status::decode) {
        Some(Ended::Exited(code)) => json!({ "exit_code": code, "signal": null }),
        Some(Ended::Signaled {
            signal,
            core_dumped,
        }) => json!({ "exit_code": null, "signal": signal, "core_dumped": core_dumped }),
        None => {
            let why = if !offsets_known {
                "unknown: the kernel's BTF gave no task_struct offsets"
            } else if status.is_none() {
                "unknown: the command's pid was not watched"
            } else {
                "unknown: the command's process was not seen exiting"
            };
            json!({ "exit_code": null, "signal": null, "exit_status": why })
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn exit_details_say_how_the_command_ended_or_why_it_is_unknown() {
        assert_eq!(
            exit_details(Some(3 << 8), true),
            json!({ "exit_code": 3, "signal": null })
        );
        assert_eq!(
            exit_details(Some(9), true),
            json!({ "exit_code": null, "signal": 9, "core_dumped": false })
        );
        let running = exit_details(Some(exit_status::RUNNING), true);
        assert!(
            running["exit_status"]
                .as_str()
                .unwrap()
                .contains("not seen exiting")
        );
        let unwatched = exit_details(None, true);
        assert!(
            unwatched["exit_status"]
                .as_str()
                .unwrap()
                .contains("not watched")
        );
        let no_btf = exit_details(Some(exit_status::RUNNING), false);
        assert!(no_btf["exit_status"].as_str().unwrap().contains("BTF"));
    }
}
