//! Which kernel hooks to use, decided at start-up by probing the kernel.
//!
//! | what                | tracepoint                         | kprobe                       | fentry                        |
//! |---------------------|------------------------------------|------------------------------|-------------------------------|
//! | exec                | `sched/sched_process_exec`         | + `security_bprm_check`      | + `security_bprm_check`       |
//! | fork / exit         | `tp_btf/sched_process_fork`, `sched/sched_process_exit` | same | same                 |
//! | write(2) family     | none: files are marked at open for writing and, for descriptors held when a process becomes tainted, at taint time | `vfs_write` (struct file) | `vfs_write` |
//! | ftruncate, fchmod   | `sys_enter_*`                      | kprobe on `__x64_sys_*`      | fentry on `__x64_sys_*`       |
//! | open/creat, rename, link, unlink, chmod, truncate | `sys_enter_*` + `sys_exit_*` | kprobe + kretprobe on `__x64_sys_*` | fexit on `__x64_sys_*` |
//!
//! Why the kprobe and fentry strategies hook the syscall *wrappers*: enabling any syscall
//! tracepoint puts every syscall of every process on the kernel's syscall-tracing slow
//! path, hooked or not (measured here: a 1-byte write(2) costs ~4 % more with only
//! `sys_enter_openat` enabled). A probe on `__x64_sys_openat` costs only the opens.
//!
//! fentry is preferred where it loads (a BPF trampoline is cheaper than a kprobe's
//! breakpoint), then kprobes if the kernel has them, then tracepoints. The tracepoint
//! strategy is complete: a `#!` script is caught by rule 3 when its interpreter opens it.
use std::path::Path;

use sensor_common::offsets::{KernelOffsets, SYSCALL_ARG_REGS};
use serde::Serialize;

use crate::config::StrategyChoice;

#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Strategy {
    Fentry,
    Kprobe,
    Tracepoint,
}

/// Syscalls changing a file through a descriptor, hooked at entry: (name, required).
const FD_SYSCALLS: &[(&str, bool)] = &[("ftruncate", true), ("fchmod", true)];

/// Open and path syscalls, hooked at entry and exit: (name, required). The optional ones
/// are missing on some kernels (`openat2` before 5.6, `fchmodat2` before 6.6) or
/// architectures (the legacy non-`at` calls); glibc uses the required ones.
const PATH_SYSCALLS: &[(&str, bool)] = &[
    ("open", false),
    ("openat", true),
    ("openat2", false),
    ("creat", false),
    ("rename", false),
    ("renameat", false),
    ("renameat2", true),
    ("link", false),
    ("linkat", true),
    ("unlink", false),
    ("unlinkat", true),
    ("chmod", false),
    ("fchmodat", true),
    ("fchmodat2", false),
    ("truncate", true),
];

/// Programs attached, or left out, together: a syscall's entry and exit halves.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Hook {
    pub programs: Vec<String>,
    pub required: bool,
}

impl Hook {
    fn new(programs: Vec<String>, required: bool) -> Self {
        Hook { programs, required }
    }
}

impl Strategy {
    pub const fn name(self) -> &'static str {
        match self {
            Strategy::Fentry => "fentry",
            Strategy::Kprobe => "kprobe",
            Strategy::Tracepoint => "tracepoint",
        }
    }

    /// Programs only this strategy attaches.
    pub fn own_hooks(self) -> Vec<Hook> {
        let mut hooks: Vec<Hook> = match self {
            Strategy::Fentry => ["fe_vfs_write", "fe_security_bprm_check"].iter().map(|p| Hook::new(vec![p.to_string()], true)).collect(),
            Strategy::Kprobe => ["kp_vfs_write", "kp_security_bprm_check"].iter().map(|p| Hook::new(vec![p.to_string()], true)).collect(),
            Strategy::Tracepoint => Vec::new(),
        };
        for (name, required) in FD_SYSCALLS {
            let program = match self {
                Strategy::Fentry => format!("fe_sys_{name}"),
                Strategy::Kprobe => format!("kp_sys_{name}"),
                Strategy::Tracepoint => format!("tp_sys_enter_{name}"),
            };
            hooks.push(Hook::new(vec![program], *required));
        }
        for (name, required) in PATH_SYSCALLS {
            let programs = match self {
                Strategy::Fentry => vec![format!("fx_sys_{name}")],
                Strategy::Kprobe => vec![format!("kp_sys_{name}"), format!("kr_sys_{name}")],
                Strategy::Tracepoint => vec![format!("tp_sys_enter_{name}"), format!("tp_sys_exit_{name}")],
            };
            hooks.push(Hook::new(programs, *required));
        }
        hooks
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
    pub fn precheck(self, offsets: &KernelOffsets) -> Option<String> {
        if self == Strategy::Tracepoint {
            return None;
        }
        if let Err(why) = crate::kernel::offsets::syscall_regs(offsets) {
            return Some(why);
        }
        match self {
            Strategy::Kprobe if !Path::new("/sys/bus/event_source/devices/kprobe").exists() => {
                Some("the kernel has no kprobe PMU (CONFIG_KPROBES / CONFIG_KPROBE_EVENTS not set)".into())
            }
            _ => None,
        }
    }
}

/// Programs every strategy attaches: process life and TCP state changes (none of them a
/// syscall tracepoint). (program, required). A missing optional one is logged and shown
/// by `status`.
pub const COMMON_PROGRAMS: &[(&str, bool)] = &[
    ("tp_sched_process_exec", true),
    ("tp_btf_sched_process_fork", true),
    ("tp_sched_process_exit", true),
    ("tp_inet_sock_set_state", false),
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

/// Kernel function a `kp_*`/`kr_*`/`fe_*`/`fx_*` program hooks: `*_sys_NAME` programs
/// hook this architecture's syscall wrapper (`__x64_sys_NAME`).
pub fn function_of(program: &str) -> Option<String> {
    let function = ["kp_", "kr_", "fe_", "fx_"].iter().find_map(|p| program.strip_prefix(p))?;
    if function.starts_with("sys_") {
        let (_, prefix) = SYSCALL_ARG_REGS?;
        return Some(format!("{prefix}{function}"));
    }
    Some(function.to_string())
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
        assert_eq!(function_of("kp_vfs_write").as_deref(), Some("vfs_write"));
        assert_eq!(function_of("fe_security_bprm_check").as_deref(), Some("security_bprm_check"));
    }

    #[test]
    fn only_the_tracepoint_strategy_uses_syscall_tracepoints() {
        for strategy in [Strategy::Fentry, Strategy::Kprobe, Strategy::Tracepoint] {
            let programs: Vec<String> = strategy.own_hooks().into_iter().flat_map(|h| h.programs).collect();
            let tracepoints = programs.iter().filter(|p| p.starts_with("tp_sys_")).count();
            assert_eq!(tracepoints > 0, strategy == Strategy::Tracepoint, "{strategy:?}: {programs:?}");
            // Every strategy follows the same syscalls.
            assert!(programs.iter().any(|p| p.ends_with("_renameat2")), "{strategy:?}");
            assert!(programs.iter().any(|p| p.ends_with("_ftruncate")), "{strategy:?}");
        }
        let kprobe = Strategy::Kprobe.own_hooks();
        let openat = kprobe.iter().find(|h| h.programs[0] == "kp_sys_openat").unwrap();
        assert_eq!(openat.programs, ["kp_sys_openat", "kr_sys_openat"]);
        assert!(openat.required);
        #[cfg(target_arch = "x86_64")]
        assert_eq!(function_of("kr_sys_openat").as_deref(), Some("__x64_sys_openat"));
    }
}
