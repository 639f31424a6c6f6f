//! `enforcer policy check [--explain]`.
use std::io::Write as _;

use enforcer::{
    kernel::probe::{ModeRequest, Probe},
    policy::{self, Policy, Vars, explain::explain},
};

use super::CheckArgs;

pub fn check(args: CheckArgs) -> i32 {
    let vars: Vars = args.vars.into_iter().collect();
    let mode = match args.mode.map_or_else(ModeRequest::from_env, Ok) {
        Ok(mode) => mode,
        Err(e) => {
            eprintln!("enforcer: {e}");
            return 2;
        }
    };
    let probe = args.explain.then(|| Probe::run(mode));
    let mut failed = false;
    let mut out = std::io::stdout().lock();
    for file in &args.files {
        match policy::load(file, &vars) {
            Ok(p) => {
                let _ = writeln!(
                    out,
                    "{}: ok: policy {} version {}, {} rule(s), mode {}, sha256 {}",
                    file.display(),
                    p.name,
                    p.version,
                    p.rules.len(),
                    p.mode.as_str(),
                    p.sha256
                );
                if let Some(probe) = &probe {
                    print_explanation(&mut out, &p, probe);
                }
            }
            Err(e) => {
                failed = true;
                eprintln!("{e}");
            }
        }
    }
    i32::from(failed)
}

fn print_explanation(out: &mut impl std::io::Write, p: &Policy, probe: &Probe) {
    let support = probe.support();
    let e = explain(p, &support);
    let _ = writeln!(
        out,
        "  on this kernel ({}): files and exec in {} mode (BPF LSM: {}; Landlock ABI {}; \
         identity checks {}); network by cgroup programs",
        probe.kernel_release,
        e.mode,
        match &probe.bpf_lsm {
            Ok(()) if probe.lsm_mode() => "in use".to_owned(),
            Ok(()) => "available, not used (fallback forced)".to_owned(),
            Err(why) => why.clone(),
        },
        probe.landlock_abi,
        if support.identity_checks {
            "available"
        } else {
            "unavailable"
        },
    );
    let width = e
        .rules
        .iter()
        .map(|r| r.label.len() + r.text.len() + 3)
        .max()
        .unwrap_or(0);
    for r in &e.rules {
        let name = format!("{} {:?}", r.label, r.text);
        let _ = writeln!(
            out,
            "  {name:width$}  [{}] {}",
            r.enforced_by.join("+"),
            r.how
        );
        if let Some(problem) = &r.problem {
            let _ = writeln!(out, "  {:width$}  NOT ENFORCEABLE HERE: {problem}", "");
        }
    }
    for l in &e.limits {
        let _ = writeln!(out, "  limit: {l}");
    }
    for n in &e.notes {
        let _ = writeln!(out, "  note: {n}");
    }
}
