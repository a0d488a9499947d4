#include "record/record_stats.h"

#include "base/counters.h"

namespace shadowtap::record {

void exportStats(const RecordStats& w, base::StatsSink& out) {
  auto v = [](const auto& a) { return static_cast<double>(base::load(a)); };
  out.counters("shadowtap_record_items_total",
               "Requests (HAR, JSON lines, Kafka) or segments (pcap) given to the recorder, by outcome (Kafka: written = "
               "acknowledged by the brokers, write_error = not delivered, by reason in "
               "shadowtap_record_kafka_undelivered_total).", "outcome",
               {{"written", v(w.written)},
                {"dropped_queue_full", v(w.dropped)},
                {"malformed", v(w.malformed)},
                {"write_error", v(w.writeErrors)}});
  out.counter("shadowtap_record_bytes_written_total",
              "Bytes written to recording files (Kafka: message values acknowledged by the brokers).",
              v(w.bytesWritten));
  out.counter("shadowtap_record_streamed_skipped_total",
              "Requests over --max-request-mib (their body streamed to the mirror) not recorded.",
              v(w.streamedNotRecorded));
  out.counter("shadowtap_record_redacted_values_total", "Header and query values redacted.", v(w.redactedValues));
  out.counter("shadowtap_record_fields_not_utf8_total",
              "Methods, targets, header and trailer names and values recorded with U+FFFD in place of bytes that are "
              "not UTF-8 (HAR and JSON hold text only): replayed, they differ from what was captured.",
              v(w.notUtf8Fields));
  out.counter("shadowtap_record_rotations_total", "Recording files closed by size or time.", v(w.rotations));
  out.counter("shadowtap_record_files_deleted_total", "Oldest recording files removed for the disk cap.",
              v(w.filesDeleted));
  out.gauge("shadowtap_record_disk_bytes", "Bytes in recording files now.", v(w.diskBytes));
  out.gauge("shadowtap_record_queue_items", "Records waiting for the writer thread.", v(w.queueDepth));
  out.gauge("shadowtap_record_queue_bytes", "Bytes of the records waiting for the writer thread.", v(w.queueBytes));
}

}  // namespace shadowtap::record
