//! Which kernel hooks to use, decided at start-up by probing the kernel.
//!
//! | what                | tracepoint                         | kprobe                       | fentry                        |
//! |---------------------|------------------------------------|------------------------------|-------------------------------|
//! | exec                | `sched/sched_process_exec`         | + `security_bprm_check`      | + `security_bprm_check`       |
//! | fork / exit         | `tp_btf/sched_process_fork`, `sched/sched_process_exit` | same | same                 |
//! | write(2) family     | none: files are marked at open for writing and, for descriptors held when a process becomes tainted, at taint time | + `vfs_write` (struct file) | + `vfs_write` |
//! | ftruncate, fchmod   | `sys_enter_*`                      | same                         | same                          |
//! | open/creat, rename, link, unlink, chmod, truncate | `sys_enter_*` + `sys_exit_*` | same | same                    |
//!
//! fentry is preferred where it loads (a BPF trampoline is cheaper than a kprobe's
//! breakpoint), then kprobes if the kernel has them, then tracepoints. The tracepoint
//! strategy is complete: a `#!` script is caught by rule 3 when its interpreter opens it.
use std::path::Path;

use serde::Serialize;

use crate::config::StrategyChoice;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Fentry,
    Kprobe,
    Tracepoint,
}

impl Strategy {
    /// Programs only this strategy attaches.
    pub fn own_programs(self) -> &'static [&'static str] {
        match self {
            Strategy::Fentry => &["fe_vfs_write", "fe_security_bprm_check"],
            Strategy::Kprobe => &["kp_vfs_write", "kp_security_bprm_check"],
            Strategy::Tracepoint => &[],
        }
    }

    /// Candidates to try for a configured choice, best first.
    pub fn candidates(choice: StrategyChoice) -> Vec<Strategy> {
        match choice {
            StrategyChoice::Auto => vec![Strategy::Fentry, Strategy::Kprobe, Strategy::Tracepoint],
            StrategyChoice::Fentry => vec![Strategy::Fentry],
            StrategyChoice::Kprobe => vec![Strategy::Kprobe],
            StrategyChoice::Tracepoint => vec![Strategy::Tracepoint],
        }
    }

    /// A reason this strategy cannot work here, found without loading anything.
    pub fn precheck(self) -> Option<String> {
        match self {
            Strategy::Kprobe if !Path::new("/sys/bus/event_source/devices/kprobe").exists() => {
                Some("the kernel has no kprobe PMU (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS not set)".into())
            }
            _ => None,
        }
    }
}

/// Programs every strategy attaches: process life and the path syscalls.
/// (program, required). A missing optional tracepoint (e.g. `fchmodat2` before 6.6) is
/// logged and shown by `status`.
pub const COMMON_PROGRAMS: &[(&str, bool)] = &[
    ("tp_sched_process_exec", true),
    ("tp_btf_sched_process_fork", true),
    ("tp_sched_process_exit", true),
    ("tp_inet_sock_set_state", false),
    ("tp_sys_enter_ftruncate", true),
    ("tp_sys_enter_fchmod", true),
    ("tp_sys_enter_open", false),
    ("tp_sys_exit_open", false),
    ("tp_sys_enter_openat", true),
    ("tp_sys_exit_openat", true),
    ("tp_sys_enter_openat2", false),
    ("tp_sys_exit_openat2", false),
    ("tp_sys_enter_creat", false),
    ("tp_sys_exit_creat", false),
    ("tp_sys_enter_rename", false),
    ("tp_sys_exit_rename", false),
    ("tp_sys_enter_renameat", false),
    ("tp_sys_exit_renameat", false),
    ("tp_sys_enter_renameat2", true),
    ("tp_sys_exit_renameat2", true),
    ("tp_sys_enter_link", false),
    ("tp_sys_exit_link", false),
    ("tp_sys_enter_linkat", true),
    ("tp_sys_exit_linkat", true),
    ("tp_sys_enter_unlink", false),
    ("tp_sys_exit_unlink", false),
    ("tp_sys_enter_unlinkat", true),
    ("tp_sys_exit_unlinkat", true),
    ("tp_sys_enter_chmod", false),
    ("tp_sys_exit_chmod", false),
    ("tp_sys_enter_fchmodat", true),
    ("tp_sys_exit_fchmodat", true),
    ("tp_sys_enter_fchmodat2", false),
    ("tp_sys_exit_fchmodat2", false),
    ("tp_sys_enter_truncate", true),
    ("tp_sys_exit_truncate", true),
];

/// Tracepoint (category, name) of a `tp_*` program.
pub fn tracepoint_of(program: &str) -> Option<(&'static str, &str)> {
    let name = program.strip_prefix("tp_")?;
    if name.starts_with("sys_") {
        Some(("syscalls", name))
    } else if name.starts_with("sched_") {
        Some(("sched", name))
    } else if name.starts_with("inet_sock_") {
        Some(("sock", name))
    } else {
        None
    }
}

/// Fields a tracepoint program reads at fixed offsets: (program, [(field, offset)]). The
/// syscall and sched records have had one layout for years; this one is checked against
/// the running kernel's tracefs `format` before attaching, so a kernel that moved a field
/// gets a clear message instead of wrong addresses.
pub const FIXED_LAYOUTS: &[(&str, &[(&str, usize)])] = &[(
    "tp_inet_sock_set_state",
    &[("newstate", 20), ("sport", 24), ("dport", 26), ("family", 28), ("protocol", 30), ("saddr_v6", 40), ("daddr_v6", 56)],
)];

/// `field name -> offset` of a tracefs `format` file.
pub fn format_offsets(format: &str) -> std::collections::HashMap<String, usize> {
    format
        .lines()
        .filter_map(|l| {
            let l = l.trim().strip_prefix("field:")?;
            let (decl, rest) = l.split_once(';')?;
            let name = decl.split_whitespace().last()?.split('[').next()?.to_string();
            let offset = rest.trim().strip_prefix("offset:")?.split(';').next()?.trim().parse().ok()?;
            Some((name, offset))
        })
        .collect()
}

/// Why `program` must not attach on this kernel (its fields are elsewhere), if so.
pub fn layout_mismatch(program: &str, format: &str) -> Option<String> {
    let (_, fields) = FIXED_LAYOUTS.iter().find(|(p, _)| *p == program)?;
    let found = format_offsets(format);
    let wrong: Vec<String> = fields
        .iter()
        .filter(|(f, off)| found.get(*f) != Some(off))
        .map(|(f, off)| format!("{f} expected at {off}, found {:?}", found.get(*f)))
        .collect();
    (!wrong.is_empty()).then(|| format!("record layout differs: {}", wrong.join(", ")))
}

/// Kernel function a `kp_*`/`fe_*` program hooks.
pub fn function_of(program: &str) -> Option<&str> {
    program.strip_prefix("kp_").or_else(|| program.strip_prefix("fe_"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_map_to_hooks() {
        assert_eq!(tracepoint_of("tp_sys_enter_openat"), Some(("syscalls", "sys_enter_openat")));
        assert_eq!(tracepoint_of("tp_sched_process_exec"), Some(("sched", "sched_process_exec")));
        assert_eq!(tracepoint_of("tp_inet_sock_set_state"), Some(("sock", "inet_sock_set_state")));
    }

    #[test]
    fn tracefs_layout_is_checked() {
        let format = "name: inet_sock_set_state\nformat:\n\tfield:unsigned short common_type;\toffset:0;\tsize:2;\tsigned:0;\n\tfield:int newstate;\toffset:20;\tsize:4;\tsigned:1;\n\tfield:__u16 sport;\toffset:24;\tsize:2;\tsigned:0;\n\tfield:__u16 dport;\toffset:26;\tsize:2;\tsigned:0;\n\tfield:__u16 family;\toffset:28;\tsize:2;\tsigned:0;\n\tfield:__u16 protocol;\toffset:30;\tsize:2;\tsigned:0;\n\tfield:__u8 saddr_v6[16];\toffset:40;\tsize:16;\tsigned:0;\n\tfield:__u8 daddr_v6[16];\toffset:56;\tsize:16;\tsigned:0;\n";
        assert_eq!(format_offsets(format).get("saddr_v6"), Some(&40));
        assert_eq!(layout_mismatch("tp_inet_sock_set_state", format), None);
        let moved = format.replace("offset:56", "offset:60");
        assert!(layout_mismatch("tp_inet_sock_set_state", &moved).unwrap().contains("daddr_v6 expected at 56"));
        assert_eq!(layout_mismatch("tp_sys_enter_openat", format), None);
        assert_eq!(function_of("kp_vfs_write"), Some("vfs_write"));
        assert_eq!(function_of("fe_security_bprm_check"), Some("security_bprm_check"));
    }
}
