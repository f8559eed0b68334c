use std::io::Write;

use super::{host::*, initramfs::*, modules::*, *};

#[test]
fn parses_ldd_output() {
    let text = "\tlinux-vdso.so.1 (0x00007ffd)\n\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x00007f41)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f41)\n";
    assert_eq!(
        parse_ldd(text).unwrap(),
        [
            PathBuf::from("/lib/x86_64-linux-gnu/libc.so.6"),
            PathBuf::from("/lib64/ld-linux-x86-64.so.2")
        ]
    );
    assert!(parse_ldd("\tlibfoo.so.1 => not found\n").is_err());
}

#[test]
fn finds_markers() {
    let console = "boot\nhello VTRAIL-GUEST-EXIT=9 no\nVTRAIL-GUEST-EXIT=3\n[ 1.0] reboot\n";
    assert_eq!(find_marker(console, EXIT_MARKER), Some("3"));
    assert_eq!(
        find_marker("x VTRAIL-GUEST-EXIT=7\n", EXIT_MARKER),
        Some("7")
    );
    assert_eq!(find_marker("nothing\n", EXIT_MARKER), None);
}

#[test]
fn quotes_for_the_shell() {
    assert_eq!(shell_quote("a b"), "'a b'");
    assert_eq!(shell_quote("it's"), r"'it'\''s'");
}

#[test]
fn module_names() {
    assert_eq!(
        module_name("sch_ingress.ko").as_deref(),
        Some("sch_ingress")
    );
    assert_eq!(
        module_name("amd-uncore.ko.xz").as_deref(),
        Some("amd_uncore")
    );
    assert_eq!(module_name("README"), None);
}

#[test]
fn cpio_is_newc_and_aligned() {
    let mut tree = Tree::default();
    tree.insert("a/b/c", Node::bytes(b"hello".to_vec(), 0o644))
        .unwrap();
    tree.insert("a/link", Node::Symlink("/a/b/c".into()))
        .unwrap();
    let mut out = Vec::new();
    tree.write_cpio(&mut out).unwrap();
    assert!(out.starts_with(b"070701"));
    assert_eq!(out.len() % 4, 0);
    // Parents come before children.
    let names: Vec<&str> = tree.nodes.keys().map(String::as_str).collect();
    assert_eq!(names, ["a", "a/b", "a/b/c", "a/link"]);
    if find_in_path("cpio").is_some() {
        let dir = std::env::temp_dir().join(format!("vtrail-cpio-test-{}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap();
        let mut child = Command::new("cpio")
            .args(["-t", "--quiet"])
            .current_dir(&dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .unwrap();
        child.stdin.take().unwrap().write_all(&out).unwrap();
        let listed = child.wait_with_output().unwrap();
        let _ = fs::remove_dir_all(&dir);
        assert_eq!(
            String::from_utf8_lossy(&listed.stdout),
            "a\na/b\na/b/c\na/link\n"
        );
    }
}

/// Boots the guest: a dynamically linked host binary (`env`, exercising the `ldd`
/// copy and the loader) runs a busybox shell script that checks the kernel release,
/// BTF, tracefs's kprobe-able functions, bpffs and the TC modules.
#[test]
fn boots_debian_kernel_and_runs_a_binary() {
    let script = r#"
set -e
echo "uname-r=$(uname -r)"
test -e /sys/kernel/btf/vmlinux && echo "btf-vmlinux=present"
echo "vfs_write-functions=$(grep -c vfs_write /sys/kernel/tracing/available_filter_functions)"
echo 'p:vtrail_probe vfs_write' >> /sys/kernel/tracing/kprobe_events && echo "kprobe-vfs_write=created"
echo "lockdown=$(cat /sys/kernel/security/lockdown)"
echo "bpffs=$(grep -c ' /sys/fs/bpf bpf ' /proc/mounts)"
echo "lsm=$(cat /sys/kernel/security/lsm)"
echo "modules=$(cut -d' ' -f1 /proc/modules | sort | tr '\n' ',')"
echo "extra=$(cat /etc/vtrail-extra.txt)"
exit 7
"#;
    let extra = std::env::temp_dir().join(format!("vtrail-extra-{}.txt", std::process::id()));
    fs::write(&extra, "extra-file-ok\n").unwrap();
    let started = Instant::now();
    let run = run_in_guest(
        Path::new("/usr/bin/env"),
        &["sh", "-c", script],
        &[(extra.clone(), "/etc/vtrail-extra.txt")],
        &["sch_ingress", "cls_bpf", "act_bpf", "veth"],
        Duration::from_secs(240),
    );
    let _ = fs::remove_file(&extra);
    let run = run.unwrap();
    eprintln!(
        "boot-run-poweroff took {:.1} s; console:\n{}",
        started.elapsed().as_secs_f64(),
        run.console
    );
    assert_eq!(run.exit_marker, Some(7), "console:\n{}", run.console);
    assert!(run.console.contains(&format!("uname-r={KERNEL_RELEASE}")));
    assert!(run.console.contains("btf-vmlinux=present"));
    let n: u32 = find_marker(&run.console, "vfs_write-functions=")
        .unwrap()
        .parse()
        .unwrap();
    assert!(n > 0, "vfs_write not in available_filter_functions");
    assert!(run.console.contains("kprobe-vfs_write=created"));
    assert!(run.console.contains("bpffs=1"));
    assert!(run.console.contains("extra=extra-file-ok"));
    for m in ["sch_ingress", "cls_bpf", "act_bpf", "veth"] {
        assert!(
            find_marker(&run.console, "modules=").unwrap().contains(m),
            "{m} not loaded"
        );
    }
}

/// Runs this very test binary (a Rust binary needing libgcc_s, libc and the loader)
/// in the guest, filtered to one host-independent test: the way kernel-side tests
/// can be shipped into the guest.
#[test]
fn runs_a_rust_test_binary_in_the_guest() {
    let me = std::env::current_exe().unwrap();
    let run = run_in_guest(
        &me,
        &["--exact", "qemu::tests::finds_markers", "--test-threads=1"],
        &[],
        &[],
        Duration::from_secs(240),
    )
    .unwrap();
    assert_eq!(run.exit_marker, Some(0), "console:\n{}", run.console);
    assert!(
        run.console.contains("test result: ok. 1 passed"),
        "console:\n{}",
        run.console
    );
}

/// A guest that never finishes is killed at the timeout, and the error carries the
/// console's last lines. Boots a guest for 30 s, so it is not run by default.
#[test]
#[ignore]
fn kills_the_guest_at_the_timeout() {
    let err = run_in_guest(
        Path::new(HOST_BUSYBOX),
        &["sh", "-c", "echo still-running; sleep 1000"],
        &[],
        &[],
        Duration::from_secs(30),
    )
    .unwrap_err()
    .to_string();
    assert!(err.contains("did not finish"), "{err}");
    assert!(err.contains("still-running"), "{err}");
}
