//! What this host is and runs, read from the system: /proc (processes, their files and
//! sockets), the Samba configuration, mounts. Every stage that asks the system goes here.
pub mod mounts;
pub mod procfs;
pub mod smb_conf;
