//! The Prometheus text exposition (format 0.0.4) of a `Status`: the metrics endpoint and
//! `status` are one set of counters, read at the same moment, so they never disagree.
//! Names follow the Prometheus conventions: `vtrail_` prefix, `_total` for counters,
//! base units (`_bytes`, `_seconds`), labels for what varies (`kind`, `reason`, `map`).
use std::fmt::Write;

use super::status::Status;

pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// One metric family: its HELP and TYPE lines once, then its samples.
struct Family<'o> {
    out: &'o mut String,
    name: &'static str,
}

impl Family<'_> {
    fn sample(&mut self, labels: &[(&str, &str)], value: f64) -> &mut Self {
        let _ = write!(self.out, "{}", self.name);
        if !labels.is_empty() {
            self.out.push('{');
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.out.push(',');
                }
                let _ = write!(self.out, "{k}=\"{}\"", escape_label(v));
            }
            self.out.push('}');
        }
        let _ = writeln!(self.out, " {value}");
        self
    }

    fn value(&mut self, value: f64) -> &mut Self {
        self.sample(&[], value)
    }
}

fn family<'o>(out: &'o mut String, name: &'static str, kind: &str, help: &str) -> Family<'o> {
    let _ = writeln!(out, "# HELP {name} {help}\n# TYPE {name} {kind}");
    Family { out, name }
}

/// Label values are escaped as the format says: backslash, double quote and newline.
fn escape_label(v: &str) -> String {
    v.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

pub fn render(s: &Status) -> String {
    let mut out = String::new();
    let o = &mut out;
    family(o, "vtrail_start_time_seconds", "gauge", "When this sensor started (Unix time).").value(s.started_ns as f64 / 1e9);
    let c = &s.config;
    family(o, "vtrail_config_loaded_time_seconds", "gauge", "When the configuration in effect was read (start or last SIGHUP reload, Unix time).")
        .value(c.loaded_ns as f64 / 1e9);
    family(o, "vtrail_config_reloads_total", "counter", "SIGHUP reloads applied.").value(c.reloads as f64);
    family(o, "vtrail_config_reload_failures_total", "counter", "SIGHUP reloads refused (the file did not parse or validate; logged).").value(c.failed_reloads as f64);
    family(o, "vtrail_config_restart_needed_keys", "gauge", "Keys changed in the file that wait for a restart.").value(c.restart_needed.len() as f64);

    let mut f = family(o, "vtrail_events_total", "counter", "Kernel events recorded, by kind.");
    for (kind, n) in &s.events_received {
        f.sample(&[("kind", kind)], *n as f64);
    }
    let mut f = family(o, "vtrail_kernel_drops_total", "counter", "Events the kernel could not deliver, by reason and kind (ringbuf_full: the ring buffer was full).");
    for (name, n) in &s.kernel_drops {
        let (reason, kind) = name.split_once('.').unwrap_or((name, ""));
        f.sample(&[("reason", reason), ("kind", kind)], *n as f64);
    }
    family(o, "vtrail_decode_errors_total", "counter", "Kernel records that did not decode (dropped, logged).").value(s.decode_errors as f64);
    family(o, "vtrail_ingest_errors_total", "counter", "Events that could not be written to the graph (logged).").value(s.ingest_errors as f64);
    family(o, "vtrail_follower_lagged_events_total", "counter", "Events a slow `events --follow` client missed (the graph has them).")
        .value(s.follower_lagged_events as f64);

    let r = &s.ring;
    family(o, "vtrail_ring_buffer_size_bytes", "gauge", "Size of the kernel ring buffer.").value(r.size_bytes as f64);
    family(o, "vtrail_ring_buffer_used_bytes", "gauge", "Ring buffer bytes written by the kernel and not yet drained.").value(r.used_bytes as f64);
    family(o, "vtrail_ring_buffer_peak_used_bytes", "gauge", "Most ring buffer bytes in use at once since start.").value(r.peak_used_bytes as f64);
    family(o, "vtrail_ingest_queue_records", "gauge", "Records drained from the ring and not yet in the graph.").value(r.queued_records as f64);
    family(o, "vtrail_ingest_queue_bytes", "gauge", "Bytes drained from the ring and not yet in the graph.").value(r.queued_bytes as f64);
    family(o, "vtrail_ingest_queue_peak_records", "gauge", "Most records queued for ingest at once since start.").value(r.peak_queued_records as f64);
    family(o, "vtrail_ingest_queue_limit_bytes", "gauge", "Queue size at which draining pauses (the kernel then counts drops).").value(r.queue_limit_bytes as f64);
    family(o, "vtrail_ingest_queue_full_total", "counter", "Times the ingest queue was full and records were left in the ring.").value(r.queue_full_waits as f64);
    family(o, "vtrail_ingest_seconds_total", "counter", "Time spent writing events into the graph.").value(s.database.ingest_seconds);

    let k = &s.kernel_state;
    let mut f = family(o, "vtrail_kernel_map_entries", "gauge", "Entries in the kernel's taint maps.");
    f.sample(&[("map", "procs")], k.procs_entries as f64).sample(&[("map", "inodes")], k.inodes_entries as f64);
    let mut f = family(o, "vtrail_kernel_map_capacity", "gauge", "Capacity of the kernel's taint maps.");
    f.sample(&[("map", "procs")], k.procs_capacity as f64).sample(&[("map", "inodes")], k.inodes_capacity as f64);
    family(o, "vtrail_kernel_untrusted_inodes", "gauge", "Inodes the kernel holds untrusted.").value(k.untrusted_inodes as f64);

    let db = &s.database;
    family(o, "vtrail_database_size_bytes", "gauge", "Size of the graph database on disk.").value(db.size_bytes as f64);
    let mut f = family(o, "vtrail_database_records", "gauge", "Records in the graph database, by tree.");
    f.sample(&[("tree", "nodes")], db.nodes as f64)
        .sample(&[("tree", "edges")], db.edges as f64)
        .sample(&[("tree", "untrusted_files")], db.untrusted_files as f64)
        .sample(&[("tree", "tainted_processes")], db.tainted_processes as f64);
    family(o, "vtrail_database_flushes_total", "counter", "Flushes of the graph database to disk.").value(db.flushes as f64);
    family(o, "vtrail_database_flush_seconds_total", "counter", "Time spent flushing the graph database.").value(db.flush_seconds);
    family(o, "vtrail_database_last_flush_seconds", "gauge", "Duration of the last flush.").value(db.last_flush_seconds);

    let net = &s.network;
    family(o, "vtrail_network_monitoring", "gauge", "1 when network monitoring runs.").value(f64::from(u8::from(net.enabled)));
    family(o, "vtrail_blocked_hosts", "gauge", "Quarantined remote addresses.").value(net.blocked_hosts.len() as f64);
    let mut f = family(o, "vtrail_network_kernel_total", "counter", "The TC classifiers' counters, by name.");
    for (name, n) in &net.kernel_counters {
        f.sample(&[("counter", name)], *n as f64);
    }
    if let Some(a) = &net.attribution {
        let mut f = family(o, "vtrail_attribution_total", "counter", "Network attribution results, by what was found.");
        for (what, n) in [
            ("uploads_seen", a.uploads_seen),
            ("uploads_out", a.uploads_out),
            ("received_from", a.received_from),
            ("received_from_inferred", a.received_from_inferred),
            ("sent_to", a.sent_to),
            ("sent_to_ambiguous", a.sent_to_ambiguous),
            ("connections", a.connections),
            ("encrypted_sessions", a.encrypted_sessions),
            ("ftp_refused_transfers", a.ftp_refused_transfers),
            ("ftp_stream_gaps", a.ftp_stream_gaps),
            ("name_index_resets", a.name_index_resets),
        ] {
            f.sample(&[("result", what)], n as f64);
        }
        let exact = a.received_from.saturating_sub(a.received_from_inferred);
        let mut f = family(o, "vtrail_received_from_total", "counter", "Files attributed to a sender, by how sure.");
        f.sample(&[("match", "exact")], exact as f64).sample(&[("match", "inferred")], a.received_from_inferred as f64);
        let unmatched = a.uploads_seen.saturating_sub(a.received_from);
        family(o, "vtrail_uploads_unmatched", "gauge", "Uploads seen on the wire with no file attributed to them yet.").value(unmatched as f64);
    }

    let n = &s.naming;
    let mut f = family(o, "vtrail_naming_lookups_total", "counter", "Reverse lookups of remote addresses to node ids, by result.");
    f.sample(&[("result", "resolved")], n.resolved as f64)
        .sample(&[("result", "unknown")], n.unknown as f64)
        .sample(&[("result", "failed")], n.failed as f64);
    family(o, "vtrail_naming_cache_hits_total", "counter", "Addresses named from the cache.").value(n.cache_hits as f64);
    family(o, "vtrail_naming_pending", "gauge", "Lookups in flight.").value(n.pending as f64);

    let fl = &s.fleet;
    family(o, "vtrail_fleet_enabled", "gauge", "1 when records stream to the fleet.").value(f64::from(u8::from(fl.enabled)));
    if fl.enabled {
        family(o, "vtrail_fleet_connected", "gauge", "1 while the fleet link is up.").value(f64::from(u8::from(fl.connected)));
        family(o, "vtrail_fleet_backlog_records", "gauge", "Records not yet acknowledged by the fleet.").value(fl.backlog_records as f64);
        family(o, "vtrail_fleet_backlog_age_seconds", "gauge", "How long the oldest unacknowledged record has waited.").value(fl.backlog_age_seconds.unwrap_or(0.0));
        family(o, "vtrail_fleet_published_records_total", "counter", "Records the fleet acknowledged.").value(fl.published_records as f64);
        family(o, "vtrail_fleet_forced_reconnects_total", "counter", "Reconnects forced because acks stopped.").value(fl.forced_reconnects as f64);
        family(o, "vtrail_fleet_published_alerts_total", "counter", "Alerts the fleet acknowledged.").value(fl.published_alerts as f64);
        let mut f = family(o, "vtrail_fleet_publish_errors_total", "counter", "Failed publishes, by reason.");
        for (reason, n) in &fl.publish_errors {
            f.sample(&[("reason", reason)], *n as f64);
        }
    }

    let sc = &s.scan;
    family(o, "vtrail_scan_enabled", "gauge", "1 when untrusted files are scanned at their close.").value(f64::from(u8::from(sc.enabled)));
    if sc.enabled {
        family(o, "vtrail_scan_closes_total", "counter", "Closes after a write of untrusted files (the only ones marked).").value(sc.closes_seen as f64);
        family(o, "vtrail_scan_watched_files_total", "counter", "Untrusted files given an inode mark for their closes.").value(sc.watched as f64);
        let mut f = family(o, "vtrail_scan_unwatched_files_total", "counter", "Untrusted files whose closes could not be watched, by reason.");
        f.sample(&[("reason", "gone")], sc.watch_gone as f64).sample(&[("reason", "mark_refused")], sc.watch_mark_failures as f64).sample(&[("reason", "queue_full")], sc.watch_queue_full as f64);
        family(o, "vtrail_scan_queued_total", "counter", "Untrusted files queued for a scan.").value(sc.queued as f64);
        let mut f = family(o, "vtrail_scan_verdicts_total", "counter", "Scans finished, by verdict.");
        f.sample(&[("verdict", "clean")], sc.clean as f64).sample(&[("verdict", "detected")], sc.detected as f64).sample(&[("verdict", "not_scanned")], sc.not_scanned as f64);
        family(o, "vtrail_scan_too_large_total", "counter", "Files above scan.max_file_bytes, not scanned.").value(sc.too_large as f64);
        family(o, "vtrail_scan_cache_hits_total", "counter", "Rescans skipped: the file had not changed since its verdict.").value(sc.cache_hits as f64);
        family(o, "vtrail_scan_queue_full_total", "counter", "Files the full scan queue kept by name for a later try.").value(sc.queue_full as f64);
        family(o, "vtrail_scan_waiting_files", "gauge", "Files waiting by name for a later try (queue full, clamd down).").value(sc.waiting as f64);
        family(o, "vtrail_scan_lost_total", "counter", "Files that could not be kept for a later try (the retry list was full).").value(sc.lost as f64);
        family(o, "vtrail_scan_clamd_unavailable_total", "counter", "Scans clamd did not answer (down or timed out).").value(sc.clamd_unavailable as f64);
        family(o, "vtrail_scan_watch_overflows_total", "counter", "fanotify queue overflows (closes not reported).").value(sc.watch_overflows as f64);
        family(o, "vtrail_alerts_total", "counter", "Alerts raised (files flagged).").value(sc.alerts as f64);
        family(o, "vtrail_response_failures_total", "counter", "Automatic responses that failed.").value(sc.responses_failed as f64);
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_sample_line_is_a_name_labels_and_a_number() {
        let mut s = crate::control::status::tests::status();
        s.events_received.insert("exec".into(), 7);
        s.scan.enabled = true;
        s.scan.detected = 3;
        let text = render(&s);
        assert!(text.contains("vtrail_scan_verdicts_total{verdict=\"detected\"} 3\n"), "{text}");
        assert!(text.contains("vtrail_events_total{kind=\"exec\"} 7\n"), "{text}");
        assert!(text.contains("vtrail_kernel_drops_total{reason=\"ringbuf_full\",kind=\"create\"} 2\n"), "{text}");
        for line in text.lines().filter(|l| !l.starts_with('#')) {
            let (name, value) = line.rsplit_once(' ').unwrap();
            assert!(value.parse::<f64>().is_ok(), "{line}");
            assert!(name.starts_with("vtrail_"), "{line}");
        }
        // Counters end in _total (the Prometheus convention).
        for line in text.lines().filter(|l| l.starts_with("# TYPE") && l.ends_with(" counter")) {
            assert!(line.split(' ').nth(2).is_some_and(|n| n.ends_with("_total")), "{line}");
        }
        // Each family is declared once.
        let types: Vec<&str> = text.lines().filter(|l| l.starts_with("# TYPE")).collect();
        let unique: std::collections::BTreeSet<&&str> = types.iter().collect();
        assert_eq!(types.len(), unique.len());
    }

    #[test]
    fn label_values_are_escaped() {
        assert_eq!(escape_label("a\"b\\c\nd"), "a\\\"b\\\\c\\nd");
    }
}
