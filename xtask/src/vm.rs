//! `cargo xtask vm-test [--kernel 6.1|6.12|all] [--mode lsm|fallback|both] [--suite NAME]...
//! [--only TEST]`: the privileged integration suite inside QEMU guests running Debian's own kernels, with software emulation (KVM does not work on the
//! build machines). The kernels are fetched with `apt-get download` (never installed on the
//! host); the enforcer, the probe and the test executables are built static; an initramfs with
//! busybox runs every test one at a time and powers off. Every guest line is shown.
use std::{
    fs,
    io::{BufRead as _, BufReader},
    os::unix::fs::symlink,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use anyhow::{Context as _, bail, ensure};

use crate::{cargo, is_root, step};

const TARGET: &str = "x86_64-unknown-linux-gnu";
const SUITES: &[&str] = &[
    "enforcement",
    "lsm_hooks",
    "limits",
    "lifecycle",
    "daemon",
    "upgrade",
    "attacks",
    "attacks_channels",
];
const BUSYBOX_APPLETS: &[&str] = &[
    "sh", "mount", "umount", "cat", "echo", "ls", "mkdir", "poweroff", "ip", "sleep", "grep",
    "true", "false", "pgrep", "kill", "rm", "ln",
];
/// A guest that has not powered off by then has failed.
const GUEST_TIMEOUT: Duration = Duration::from_secs(60 * 60);

/// Debian metapackage of each kernel line.
fn metapackage(kernel: &str) -> anyhow::Result<&'static str> {
    Ok(match kernel {
        "6.1" => "linux-image-amd64",
        "6.12" => "linux-image-6.12-amd64",
        other => bail!("unknown kernel {other:?}: expected 6.1, 6.12 or all"),
    })
}

/// Downloads (once) the kernel behind `kernel`'s metapackage and returns its vmlinuz.
fn fetch_kernel(cache: &Path, kernel: &str) -> anyhow::Result<PathBuf> {
    let meta = metapackage(kernel)?;
    let resolve = || -> anyhow::Result<Option<String>> {
        let out = Command::new("apt-cache").args(["depends", meta]).output()?;
        Ok(String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|l| l.trim().strip_prefix("Depends: "))
            .find(|p| p.starts_with("linux-image-6"))
            .map(str::to_owned))
    };
    let package = match resolve()? {
        Some(p) => p,
        None => {
            // A machine whose package lists were never fetched.
            step(
                "apt-get update",
                Command::new("apt-get").args(["update", "-qq"]),
            )?;
            resolve()?.with_context(|| format!("apt-cache depends {meta}: no linux-image-6*"))?
        }
    };
    let release = package.trim_start_matches("linux-image-");
    let vmlinuz = cache.join(format!("vmlinuz-{release}"));
    if vmlinuz.exists() {
        return Ok(vmlinuz);
    }
    fs::create_dir_all(cache)?;
    step(
        &format!("apt-get download {package}"),
        Command::new("apt-get")
            .arg("download")
            .arg(&package)
            .current_dir(cache),
    )?;
    let deb = fs::read_dir(cache)?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(&format!("{package}_")))
        })
        .context("the downloaded .deb")?;
    step(
        "extract vmlinuz",
        Command::new("sh").arg("-c").arg(format!(
            "dpkg-deb --fsys-tarfile '{}' | tar -x -O ./boot/vmlinuz-{release} > '{}'",
            deb.display(),
            vmlinuz.display()
        )),
    )?;
    let _ = fs::remove_file(deb);
    Ok(vmlinuz)
}

/// Builds the static executables; returns (enforcer dir, test executables by suite).
fn build_static(root: &Path) -> anyhow::Result<(PathBuf, Vec<(String, PathBuf)>)> {
    let static_flags = "-C target-feature=+crt-static";
    step(
        "build static enforcer and probe",
        cargo()
            .args([
                "build",
                "--release",
                "--target",
                TARGET,
                "-p",
                "enforcer",
                "-p",
                "enforcer-tests",
            ])
            .env("RUSTFLAGS", static_flags),
    )?;
    eprintln!("\n==> build static test executables");
    let out = cargo()
        .args([
            "test",
            "--release",
            "--target",
            TARGET,
            "-p",
            "enforcer-tests",
            "--no-run",
        ])
        .args(["--message-format=json"])
        .env("RUSTFLAGS", static_flags)
        .stderr(Stdio::inherit())
        .output()?;
    ensure!(
        out.status.success(),
        "building the static test executables failed"
    );
    let mut tests = Vec::new();
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        let Ok(m) = serde_json::from_str::<serde_json::Value>(line) else {
            continue;
        };
        let name = m["target"]["name"].as_str().unwrap_or_default();
        if m["reason"] == "compiler-artifact"
            && m["target"]["kind"][0] == "test"
            && SUITES.contains(&name)
            && let Some(exe) = m["executable"].as_str()
        {
            tests.push((name.to_owned(), PathBuf::from(exe)));
        }
    }
    ensure!(
        tests.len() == SUITES.len(),
        "expected test executables for {SUITES:?}, got {tests:?}"
    );
    Ok((root.join("target").join(TARGET).join("release"), tests))
}

/// The initramfs: busybox, the static executables under /t, and an /init that runs the suites.
/// What the guest runs: the suites, in which enforcement modes, optionally one test only.
pub struct GuestPlan<'a> {
    pub modes: Vec<&'a str>,
    /// Only these suites (`--suite NAME`, repeatable); all when empty.
    pub suites: Vec<&'a str>,
    pub filter: Option<&'a str>,
    /// A shell script to run instead of the suites (`--script FILE`, for investigating a
    /// guest by hand).
    pub script: Option<String>,
}

fn initramfs(
    work: &Path,
    bin_dir: &Path,
    tests: &[(String, PathBuf)],
    plan: &GuestPlan<'_>,
) -> anyhow::Result<PathBuf> {
    let root = work.join("root");
    let _ = fs::remove_dir_all(&root);
    for d in [
        "bin", "usr/bin", "sbin", "etc", "proc", "sys", "dev", "tmp", "run", "t/deps",
    ] {
        fs::create_dir_all(root.join(d))?;
    }
    fs::copy("/bin/busybox", root.join("bin/busybox")).context("busybox-static")?;
    for applet in BUSYBOX_APPLETS {
        symlink("busybox", root.join("bin").join(applet))?;
        symlink("../../bin/busybox", root.join("usr/bin").join(applet))?;
    }
    for exe in ["enforcer", "enforcer-run", "probe", "bench-op"] {
        fs::copy(bin_dir.join(exe), root.join("t").join(exe))?;
    }
    for (name, exe) in tests {
        fs::copy(exe, root.join("t/deps").join(name))?;
    }
    fs::write(
        root.join("etc/passwd"),
        "root:x:0:0:root:/:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n",
    )?;
    fs::write(root.join("etc/group"), "root:x:0:\nnogroup:x:65534:\n")?;
    let suites: Vec<&str> = tests
        .iter()
        .map(|(n, _)| n.as_str())
        .filter(|n| plan.suites.is_empty() || plan.suites.contains(n))
        .collect();
    if let Some(script) = &plan.script {
        fs::write(root.join("t/script.sh"), script)?;
    }
    let body = if plan.script.is_some() {
        "sh /t/script.sh 2>&1; echo \"VM: script exit $?\"\n".to_owned()
    } else {
        format!(
            "for mode in {modes}; do\n\
             export ENFORCER_MODE=$mode\n\
             for t in {suites}; do\n\
               echo \"VM: suite $t mode $mode\"\n\
               /t/deps/$t --test-threads=1 --show-output {filter} 2>&1\n\
               echo \"VM: suite $t/$mode exit $?\"\n\
             done\n\
             done\n",
            modes = plan.modes.join(" "),
            suites = suites.join(" "),
            filter = plan.filter.unwrap_or(""),
        )
    };
    fs::write(
        root.join("init"),
        format!(
            "#!/bin/sh\n\
             export PATH=/bin:/usr/bin:/sbin\n\
             mount -t proc proc /proc; mount -t sysfs sys /sys; mount -t devtmpfs dev /dev\n\
             mount -t tmpfs tmp /tmp; mount -t cgroup2 -o nsdelegate cgroup2 /sys/fs/cgroup; mount -t bpf bpf /sys/fs/bpf\n\
             mount -t securityfs securityfs /sys/kernel/security; mount -t tracefs tracefs /sys/kernel/tracing\n\
             ip link set lo up\n\
             echo \"VM: kernel $(cat /proc/sys/kernel/osrelease) lsm=$(cat /sys/kernel/security/lsm)\"\n\
             cd /t\n\
             {body}\
             echo \"VM: done\"\n\
             poweroff -f\n"
        ),
    )?;
    Command::new("chmod")
        .arg("+x")
        .arg(root.join("init"))
        .status()?;
    let initrd = work.join("initrd.gz");
    step(
        "pack the initramfs",
        Command::new("sh").arg("-c").arg(format!(
            "cd '{}' && find . -print0 | cpio --null -o -H newc --quiet | gzip -1 > '{}'",
            root.display(),
            initrd.display()
        )),
    )?;
    Ok(initrd)
}

/// (passed, failed, skipped).
type Counts = (u64, u64, u64);

/// Boots one kernel and returns (passed, failed, skipped) as the guest reported them.
fn boot(kernel: &str, vmlinuz: &Path, initrd: &Path) -> anyhow::Result<(u64, u64, u64)> {
    eprintln!("\n==> boot {kernel} ({}) under TCG", vmlinuz.display());
    let start = Instant::now();
    // One vCPU: every enforcer start and stop toggles the syscall tracepoints' static branches,
    // which the kernel patches live through a temporary int3 (text_poke_bp). With two vCPUs,
    // TCG can execute a stale copy of the patched code on the other one and the kernel oopses on
    // an int3 it no longer expects (seen once on 6.12). Real CPUs do not have this problem.
    let mut child = Command::new("qemu-system-x86_64")
        .args([
            "-accel",
            "tcg",
            "-cpu",
            "max",
            "-smp",
            "1",
            "-m",
            "2048",
            "-nographic",
            "-no-reboot",
            "-nic",
            "none",
        ])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", "console=ttyS0 quiet panic=-1"])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .spawn()
        .context("qemu-system-x86_64 (package qemu-system-x86)")?;
    let stdout = child.stdout.take().context("qemu stdout")?;
    let (mut passed, mut failed, mut skipped, mut done, mut bad_suites) =
        (0u64, 0u64, 0u64, false, Vec::new());
    let watchdog_pid = child.id();
    std::thread::spawn(move || {
        std::thread::sleep(GUEST_TIMEOUT);
        kill_guest(watchdog_pid);
    });
    for line in BufReader::new(stdout).lines() {
        let line = line?;
        let clean = line.trim_end_matches('\r');
        println!("[{kernel}] {clean}");
        if let Some(r) = clean.strip_prefix("test result: ") {
            passed += crate::count(r, "passed");
            failed += crate::count(r, "failed");
        }
        if clean.starts_with("SKIP ") {
            skipped += 1;
        }
        if let Some(rest) = clean.strip_prefix("VM: suite ")
            && let Some((suite, code)) = rest.split_once(" exit ")
            && code.trim() != "0"
        {
            bad_suites.push(suite.to_owned());
        }
        if clean == "VM: done" {
            done = true;
        }
    }
    let _ = child.wait();
    eprintln!(
        "==> {kernel}: guest ran {:.0} s",
        start.elapsed().as_secs_f64()
    );
    ensure!(
        done,
        "the {kernel} guest did not finish (timeout {GUEST_TIMEOUT:?} or crash)"
    );
    ensure!(
        bad_suites.is_empty(),
        "{kernel}: suites failed: {bad_suites:?}"
    );
    Ok((passed.saturating_sub(skipped), failed, skipped))
}

/// Ends a guest that overran its time (the reader then sees EOF and reports it unfinished).
fn kill_guest(pid: u32) {
    let _ = Command::new("kill").arg("-9").arg(pid.to_string()).status();
}

/// Runs the suite in each guest; returns (passed, failed, skipped) over all of them.
pub fn run(args: &[String]) -> anyhow::Result<(u64, u64, u64)> {
    ensure!(is_root(), "vm-test runs apt-get download and needs root");
    let which = match args.iter().position(|a| a == "--kernel") {
        Some(i) => args.get(i + 1).map(String::as_str).unwrap_or("all"),
        None => "all",
    };
    let modes = match args.iter().position(|a| a == "--mode") {
        Some(i) => match args.get(i + 1).map(String::as_str) {
            Some("both") | None => vec!["lsm", "fallback"],
            Some(m @ ("lsm" | "fallback")) => vec![m],
            Some(other) => anyhow::bail!("--mode {other}: expected lsm, fallback or both"),
        },
        None => vec!["lsm", "fallback"],
    };
    let filter = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1))
        .map(String::as_str);
    let script = match args.iter().position(|a| a == "--script") {
        Some(i) => {
            let file = args.get(i + 1).context("--script FILE")?;
            Some(fs::read_to_string(file).with_context(|| file.clone())?)
        }
        None => None,
    };
    let suites: Vec<&str> = args
        .windows(2)
        .filter(|w| w[0] == "--suite")
        .map(|w| w[1].as_str())
        .collect();
    for s in &suites {
        ensure!(
            SUITES.contains(s),
            "--suite {s}: expected one of {SUITES:?}"
        );
    }
    let plan = GuestPlan {
        modes,
        suites,
        filter,
        script,
    };
    let kernels: Vec<&str> = if which == "all" {
        vec!["6.1", "6.12"]
    } else {
        vec![which]
    };
    step(
        "set up (qemu, busybox, cpio)",
        Command::new("bash").args([
            "scripts/setup.sh",
            "qemu-system-x86",
            "busybox-static",
            "cpio",
        ]),
    )?;
    let root = std::env::current_dir()?;
    let work = root.join("target/vm");
    let (bin_dir, tests) = build_static(&root)?;
    let mut prepared = Vec::new();
    for kernel in kernels {
        let vmlinuz = fetch_kernel(&work.join("kernels"), kernel)?;
        let initrd = initramfs(&work.join(kernel), &bin_dir, &tests, &plan)?;
        prepared.push((kernel, vmlinuz, initrd));
    }
    // The guests run at the same time, one host CPU each (each has one vCPU, see `boot`): the
    // whole run takes as long as the slower guest, not the sum. Each line says its guest.
    let outcomes: Vec<(&str, anyhow::Result<Counts>)> = std::thread::scope(|scope| {
        let running: Vec<_> = prepared
            .iter()
            .map(|(kernel, vmlinuz, initrd)| {
                (*kernel, scope.spawn(move || boot(kernel, vmlinuz, initrd)))
            })
            .collect();
        running
            .into_iter()
            .map(|(kernel, handle)| {
                let outcome = handle.join().unwrap_or_else(|_| {
                    Err(anyhow::anyhow!("{kernel}: the guest's runner panicked"))
                });
                (kernel, outcome)
            })
            .collect()
    });
    let mut total = (0, 0, 0);
    let mut errors = Vec::new();
    for (kernel, outcome) in outcomes {
        match outcome {
            Ok((p, f, s)) => {
                println!("[{kernel}] summary: {p} passed, {f} failed, {s} skipped");
                total = (total.0 + p, total.1 + f, total.2 + s);
            }
            Err(e) => errors.push(format!("{e:#}")),
        }
    }
    println!(
        "\nguests: {} passed, {} failed, {} skipped",
        total.0, total.1, total.2
    );
    ensure!(errors.is_empty(), "{}", errors.join("; "));
    ensure!(total.1 == 0, "tests failed in a guest");
    Ok(total)
}
