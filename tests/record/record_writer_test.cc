#include "record/record_writer.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <unistd.h>

#include <csignal>
#include <filesystem>
#include <regex>
#include <nlohmann/json.hpp>

#include "record/codec.h"
#include "record/record_format.h"
#include "record_test_util.h"

namespace shadowtap::record {
namespace {

using testing::makeRequest;
using testing::slurp;
using testing::kMay1;
using testing::make;
using testing::optionsFor;
using testing::TempDir;
using Json = nlohmann::json;


std::vector<Json> jsonLines(const std::string& text) {
  std::vector<Json> out;
  size_t pos = 0;
  while (pos < text.size()) {
    const size_t nl = text.find('\n', pos);
    out.push_back(Json::parse(text.substr(pos, nl - pos)));
    pos = nl + 1;
  }
  return out;
}

const std::string kGet =
    "GET /r/1?token=s3cret&x=1 HTTP/1.1\r\nHost: httpbin:8000\r\nAuthorization: Bearer abc\r\n"
    "Cookie: a=1; b=2\r\nX-Api-Key: k\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n";
const std::string kPost = "POST /p HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Length: 5\r\n\r\nhello";

TEST(JsonlWriter, OneObjectPerRequestWithDefaultRedaction) {
  TempDir dir;
  auto w = make(optionsFor(dir, "t.jsonl"));
  w->onRequest(makeRequest(kGet));
  w->onRequest(makeRequest(kPost, 2'000'000'000));
  std::string binary = "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 4\r\n\r\n";
  binary += std::string("\x00\xff\xfe\x01", 4);
  w->onRequest(makeRequest(binary));
  w->close();
  const auto files = dir.files("t", ".jsonl");
  ASSERT_EQ(files.size(), 1u);
  const auto lines = jsonLines(slurp(files[0]));
  ASSERT_EQ(lines.size(), 3u);
  const Json& g = lines[0];
  EXPECT_EQ(g["time"], "2024-05-01T12:00:00.001500Z");
  EXPECT_EQ(g["flow"], "198.18.0.1:40000->198.18.0.2:8000");
  EXPECT_EQ(g["rule"], 1);
  EXPECT_EQ(g["method"], "GET");
  EXPECT_EQ(g["target"], "/r/1?token=s3cret&x=1");  // no query redaction configured
  EXPECT_EQ(g["version"], "HTTP/1.1");
  EXPECT_EQ(g["headers"], Json::parse(R"([["Host","httpbin:8000"],["Authorization","[REDACTED]"],
      ["Cookie","[REDACTED]"],["X-Api-Key","k"],["X-Dup","a"],["X-Dup","b"]])"));
  EXPECT_EQ(g["body_length"], 0);
  EXPECT_EQ(g["body_sha256"], sha256Hex(""));
  const Json& p = lines[1];
  EXPECT_EQ(p["time"], "2024-05-01T12:00:02.000000Z");
  EXPECT_EQ(p["body"], "hello");
  EXPECT_EQ(p["body_encoding"], "text");
  EXPECT_EQ(p["body_length"], 5);
  EXPECT_EQ(p["body_sha256"], sha256Hex("hello"));
  const Json& b = lines[2];
  EXPECT_EQ(b["body_encoding"], "base64");
  EXPECT_EQ(base64Decode(b["body"].get<std::string>()), std::string("\x00\xff\xfe\x01", 4));
  const auto& s = w->stats();
  EXPECT_EQ(s.offered, 3u);
  EXPECT_EQ(s.written, 3u);
  EXPECT_EQ(s.redactedValues, 2u);
  EXPECT_EQ(s.dropped + s.malformed + s.writeErrors, 0u);
  EXPECT_EQ(s.bytesWritten, std::filesystem::file_size(files[0]));
  EXPECT_EQ(s.filesOpened, 1u);
  EXPECT_EQ(s.rotations, 0u);
}

// obs-text in a header value (legal in HTTP/1, Latin-1 by habit) is not
// UTF-8: JSON holds U+FFFD in its place, and the counter says how many fields
// a replay will send differently. A binary body is not counted (base64).
TEST(JsonlWriter, FieldsThatAreNotUtf8AreCounted) {
  TempDir dir;
  auto w = make(optionsFor(dir, "u.jsonl"));
  w->onRequest(makeRequest("GET /caf\xe9 HTTP/1.1\r\nHost: h\r\nX-Name: Jos\xe9\r\nX-Ok: caf\xc3\xa9\r\n\r\n"));
  std::string binary = "PUT /b HTTP/1.1\r\nHost: h\r\nContent-Length: 2\r\n\r\n";
  binary += std::string("\xff\xfe", 2);
  w->onRequest(makeRequest(binary));
  w->close();
  const auto lines = jsonLines(slurp(dir.files("u", ".jsonl").at(0)));
  ASSERT_EQ(lines.size(), 2u);
  EXPECT_EQ(lines[0]["target"], "/caf\xef\xbf\xbd");
  EXPECT_EQ(lines[0]["headers"][1][1], "Jos\xef\xbf\xbd");
  EXPECT_EQ(lines[0]["headers"][2][1], "caf\xc3\xa9") << "valid UTF-8 is kept";
  EXPECT_EQ(w->stats().notUtf8Fields, 2u) << "the target and X-Name";
  EXPECT_EQ(w->stats().written, 2u);
}

TEST(JsonlWriter, RedactionNoneExtraHeadersAndQuery) {
  TempDir dir;
  RecordOptions none = optionsFor(dir, "none.jsonl");
  ASSERT_EQ(applyRedactSpec("none", none), "");
  RecordOptions extra = optionsFor(dir, "extra.jsonl");
  ASSERT_EQ(applyRedactSpec("header:x-api-key,query:token,X-Dup", extra), "");
  EXPECT_NE(applyRedactSpec("none,header:x", extra), "");
  EXPECT_NE(applyRedactSpec("header:bad name", extra), "");
  auto w1 = make(none);
  auto w2 = make(extra);
  w1->onRequest(makeRequest(kGet));
  w2->onRequest(makeRequest(kGet));
  w1->close();
  w2->close();
  const Json a = jsonLines(slurp(dir.files("none", ".jsonl").at(0))).at(0);
  EXPECT_EQ(a["headers"][1][1], "Bearer abc");
  EXPECT_EQ(a["headers"][2][1], "a=1; b=2");
  EXPECT_EQ(w1->stats().redactedValues, 0u);
  const Json b = jsonLines(slurp(dir.files("extra", ".jsonl").at(0))).at(0);
  EXPECT_EQ(b["target"], "/r/1?token=[REDACTED]&x=1");
  EXPECT_EQ(b["headers"], Json::parse(R"([["Host","httpbin:8000"],["Authorization","[REDACTED]"],
      ["Cookie","[REDACTED]"],["X-Api-Key","[REDACTED]"],["X-Dup","[REDACTED]"],["X-Dup","[REDACTED]"]])"));
  EXPECT_EQ(w2->stats().redactedValues, 6u);
}

TEST(JsonlWriter, BodiesAsLengthAndHashOnly) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "nb.jsonl");
  o.keepBodies = false;
  auto w = make(o);
  w->onRequest(makeRequest(kPost));
  w->close();
  const Json p = jsonLines(slurp(dir.files("nb", ".jsonl").at(0))).at(0);
  EXPECT_FALSE(p.contains("body"));
  EXPECT_EQ(p["body_length"], 5);
  EXPECT_EQ(p["body_sha256"], sha256Hex("hello"));
  EXPECT_EQ(w->stats().bodiesOmitted, 1u);
}

TEST(JsonlWriter, ChunkedBodyKeepsItsWireFraming) {
  TempDir dir;
  auto w = make(optionsFor(dir, "c.jsonl"));
  const std::string wire = "5;ext=1\r\nhello\r\n1\r\n!\r\n0\r\nX-Trailer: done\r\n\r\n";
  w->onRequest(makeRequest("POST /c HTTP/1.1\r\nHost: h\r\nTransfer-Encoding: chunked\r\n\r\n" + wire));
  w->close();
  const Json c = jsonLines(slurp(dir.files("c", ".jsonl").at(0))).at(0);
  EXPECT_EQ(c["body"], "hello!");
  EXPECT_EQ(c["body_length"], 6);
  EXPECT_EQ(c["body_sha256"], sha256Hex("hello!"));
  EXPECT_EQ(base64Decode(c["wire_body"].get<std::string>()), wire);
}

void expectHar12(const Json& har, size_t entries) {
  ASSERT_TRUE(har.contains("log"));
  const Json& log = har["log"];
  EXPECT_EQ(log["version"], "1.2");
  EXPECT_TRUE(log["creator"]["name"].is_string());
  EXPECT_TRUE(log["creator"]["version"].is_string());
  ASSERT_TRUE(log["entries"].is_array());
  ASSERT_EQ(log["entries"].size(), entries);
  for (const Json& e : log["entries"]) {
    for (const char* k : {"startedDateTime", "time", "request", "response", "cache", "timings"}) {
      EXPECT_TRUE(e.contains(k)) << k;
    }
    const Json& rq = e["request"];
    for (const char* k : {"method", "url", "httpVersion", "cookies", "headers", "queryString", "headersSize",
                          "bodySize"}) {
      EXPECT_TRUE(rq.contains(k)) << k;
    }
    for (const Json& h : rq["headers"]) {
      EXPECT_TRUE(h["name"].is_string() && h["value"].is_string());
    }
    const Json& rs = e["response"];
    for (const char* k : {"status", "statusText", "httpVersion", "cookies", "headers", "content", "redirectURL",
                          "headersSize", "bodySize"}) {
      EXPECT_TRUE(rs.contains(k)) << k;
    }
    EXPECT_TRUE(rs["content"]["size"].is_number() && rs["content"]["mimeType"].is_string());
    for (const char* k : {"send", "wait", "receive"}) {
      EXPECT_GE(e["timings"][k].get<double>(), 0) << k;
    }
    EXPECT_TRUE(parseRfc3339(e["startedDateTime"].get<std::string>()).has_value());
  }
}

TEST(HarWriter, ValidHar12WithRequiredFields) {
  TempDir dir;
  auto w = make(optionsFor(dir, "t.har"));
  w->onRequest(makeRequest(kGet));
  w->onRequest(makeRequest(kPost));
  w->close();
  const auto files = dir.files("t", ".har");
  ASSERT_EQ(files.size(), 1u);
  const Json har = Json::parse(slurp(files[0]));
  expectHar12(har, 2);
  const Json& g = har["log"]["entries"][0]["request"];
  EXPECT_EQ(g["url"], "http://httpbin:8000/r/1?token=s3cret&x=1");
  EXPECT_EQ(g["queryString"], Json::parse(R"([{"name":"token","value":"s3cret"},{"name":"x","value":"1"}])"));
  EXPECT_EQ(g["headers"][1], Json::parse(R"({"name":"Authorization","value":"[REDACTED]"})"));
  EXPECT_EQ(g["cookies"], Json::array());  // the Cookie value is redacted
  EXPECT_EQ(g["headersSize"], kGet.size());
  const Json& p = har["log"]["entries"][1]["request"];
  EXPECT_EQ(p["postData"]["text"], "hello");
  EXPECT_EQ(p["bodySize"], 5);
  EXPECT_EQ(har["log"]["entries"][1]["startedDateTime"], "2024-05-01T12:00:00.001500Z");
  EXPECT_EQ(w->stats().bytesWritten, std::filesystem::file_size(files[0])) << "the closing line counts too";
}

TEST(HarWriter, EmptyAndUnredactedCookies) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "u.har");
  applyRedactSpec("none", o);
  auto w = make(o);
  w->onRequest(makeRequest(kGet));
  w->close();
  const Json har = Json::parse(slurp(dir.files("u", ".har").at(0)));
  EXPECT_EQ(har["log"]["entries"][0]["request"]["cookies"],
            Json::parse(R"([{"name":"a","value":"1"},{"name":"b","value":"2"}])"));
}

TEST(HarWriter, EveryRotatedFileIsValidHar) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "rot.har");
  o.maxFileBytes = 2000;  // a few entries per file
  auto w = make(o);
  for (int i = 0; i < 20; ++i) {
    w->onRequest(makeRequest(kGet, 1'000'000 + i));
  }
  w->close();
  const auto files = dir.files("rot", ".har");
  ASSERT_GT(files.size(), 3u);
  size_t entries = 0;
  for (const auto& f : files) {
    const std::string text = slurp(f);
    const Json har = Json::parse(text);
    ASSERT_TRUE(har["log"]["entries"].is_array());
    expectHar12(har, har["log"]["entries"].size());
    entries += har["log"]["entries"].size();
    EXPECT_TRUE(text.ends_with("]}}\n"));
  }
  EXPECT_EQ(entries, 20u);
  EXPECT_EQ(w->stats().rotations, files.size() - 1);  // the last one closed at exit
  EXPECT_EQ(w->stats().filesOpened, files.size());
  // Names carry the sequence number and the UTC time of opening.
  const std::string name = std::filesystem::path(files[0]).filename().string();
  EXPECT_TRUE(std::regex_match(name, std::regex(R"(rot-000001-\d{8}T\d{6}Z\.har)"))) << name;
  EXPECT_TRUE(std::filesystem::path(files[1]).filename().string().starts_with("rot-000002-"));
}

TEST(RecordWriter, DiskCapDeletesOldestFilesAlsoFromEarlierRuns) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "cap.jsonl");
  o.maxFileBytes = 1000;
  o.maxTotalBytes = 3000;
  {
    auto w = make(o);
    for (int i = 0; i < 40; ++i) {
      w->onRequest(makeRequest(kGet));
    }
    w->close();
    const auto& s = w->stats();
    EXPECT_EQ(s.written, 40u);
    EXPECT_GT(s.filesDeleted, 0u);
    EXPECT_EQ(s.filesOpened - s.filesDeleted, dir.files("cap", ".jsonl").size());
  }
  uint64_t total = 0;
  for (const auto& f : dir.files("cap", ".jsonl")) {
    total += std::filesystem::file_size(f);
  }
  EXPECT_LE(total, 3000u);
  const auto before = dir.files("cap", ".jsonl");
  // A second run continues the numbering and counts the first run's files.
  auto w = make(o);
  for (int i = 0; i < 10; ++i) {
    w->onRequest(makeRequest(kGet));
  }
  w->close();
  const auto after = dir.files("cap", ".jsonl");
  EXPECT_GT(w->stats().filesDeleted, 0u);
  EXPECT_NE(after.front(), before.front());  // the oldest of run 1 went first
  EXPECT_GT(after.back(), before.back());
  total = 0;
  for (const auto& f : after) {
    total += std::filesystem::file_size(f);
  }
  EXPECT_LE(total, 3000u);
}

TEST(RecordWriter, TimeRotationWithInjectedClock) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "time.har");
  o.rotateSeconds = 60;
  std::atomic<uint64_t> now{1'000'000'000};
  o.clock = [&] { return now.load(); };
  auto w = make(o);
  w->onRequest(makeRequest(kGet));
  // Wait for the write, then move past the rotation time: the idle file gets closed.
  for (int i = 0; i < 200 && w->stats().written < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  now += 61'000'000'000;
  for (int i = 0; i < 200 && w->stats().rotations < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  EXPECT_EQ(w->stats().rotations, 1u);
  {
    const auto files = dir.files("time", ".har");
    ASSERT_EQ(files.size(), 1u);
    EXPECT_NO_THROW(Json::parse(slurp(files[0])));  // closed on time, valid while we still run
  }
  w->onRequest(makeRequest(kGet));
  w->close();
  EXPECT_EQ(dir.files("time", ".har").size(), 2u);
}

TEST(RecordWriter, FullQueueDropsAndCounts) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "q.jsonl");
  o.queueBytes = 200;  // smaller than one request with its overhead
  auto w = make(o);
  w->onRequest(makeRequest(kGet));
  w->onRequest(makeRequest(kGet));
  w->close();
  w->onRequest(makeRequest(kPost));  // after close
  const auto& s = w->stats();
  EXPECT_EQ(s.offered, 3u);
  EXPECT_EQ(s.dropped, 3u);
  EXPECT_EQ(s.written, 0u);
  EXPECT_TRUE(dir.files("q", ".jsonl").empty());
}

TEST(RecordWriter, WriteErrorsWhenTheDirectoryGoesAway) {
  TempDir dir;
  const std::string sub = dir.path() + "/sub";
  std::filesystem::create_directory(sub);
  RecordOptions o;
  o.path = sub + "/gone.jsonl";
  o.format = RecordFormat::kJsonl;
  o.maxFileBytes = 1;  // every record closes its file
  std::string error;
  auto w = makeRecordWriter(o, &error);
  ASSERT_NE(w, nullptr) << error;
  w->onRequest(makeRequest(kGet));
  for (int i = 0; i < 400 && w->stats().rotations < 1; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  std::filesystem::remove_all(sub);
  w->onRequest(makeRequest(kGet));
  w->close();
  const auto& s = w->stats();
  EXPECT_EQ(s.written, 1u);
  EXPECT_EQ(s.writeErrors, 1u);
  EXPECT_EQ(s.offered, s.written + s.dropped + s.malformed + s.writeErrors);
}

// Runs a JSON lines recorder of 100 small requests in a child process whose
// files may not grow past 4096 bytes (RLIMIT_FSIZE, SIGXFSZ ignored: writes
// fail with EFBIG, as on a full disk). Returns the child's counters:
// offered, written, dropped, malformed, writeErrors.
std::vector<uint64_t> recordIntoFullDisk(const TempDir& dir, const std::string& name = "full.jsonl",
                                         rlim_t maxFileBytes = 4096) {
  int fds[2];
  EXPECT_EQ(pipe(fds), 0);
  const pid_t pid = fork();
  if (pid == 0) {
    ::close(fds[0]);
    std::signal(SIGXFSZ, SIG_IGN);
    const rlimit lim{maxFileBytes, maxFileBytes};
    std::string error;
    auto w = setrlimit(RLIMIT_FSIZE, &lim) == 0 ? makeRecordWriter(optionsFor(dir, name), &error) : nullptr;
    if (w == nullptr) {
      _exit(2);
    }
    for (int i = 0; i < 100; ++i) {
      w->onRequest(makeRequest("GET /n/" + std::to_string(i) + " HTTP/1.1\r\nHost: h\r\n\r\n"));
    }
    w->close();
    const auto& s = w->stats();
    const uint64_t v[5] = {s.offered, s.written, s.dropped, s.malformed, s.writeErrors};
    _exit(::write(fds[1], v, sizeof(v)) == sizeof(v) ? 0 : 3);
  }
  ::close(fds[1]);
  std::vector<uint64_t> v(5);
  EXPECT_EQ(::read(fds[0], v.data(), 5 * sizeof(uint64_t)), static_cast<ssize_t>(5 * sizeof(uint64_t)));
  ::close(fds[0]);
  int status = 0;
  EXPECT_EQ(waitpid(pid, &status, 0), pid);
  EXPECT_TRUE(WIFEXITED(status) && WEXITSTATUS(status) == 0) << status;
  return v;
}

TEST(RecordWriter, FailedFlushCountsLostRecordsAsWriteErrors) {
  TempDir dir;
  const std::vector<uint64_t> v = recordIntoFullDisk(dir);
  const uint64_t offered = v[0], written = v[1], dropped = v[2], malformed = v[3], writeErrors = v[4];
  uint64_t lines = 0;
  for (const auto& f : dir.files("full", ".jsonl")) {
    const std::string text = slurp(f);
    EXPECT_LE(text.size(), 4096u);
    // Only whole records: a cut line would not parse.
    EXPECT_TRUE(text.empty() || text.back() == '\n') << f;
    for (const Json& j : text.empty() ? std::vector<Json>() : jsonLines(text)) {
      EXPECT_TRUE(j.contains("target"));
      ++lines;
    }
  }
  EXPECT_EQ(offered, 100u);
  EXPECT_GT(lines, 0u);
  EXPECT_EQ(written, lines);
  EXPECT_GT(writeErrors, 1u);
  EXPECT_EQ(offered, written + dropped + malformed + writeErrors);
}

// A file whose first flush fails before a whole record reached it keeps its
// head (here an empty HAR log's opening, without its closing line, as after a
// crash; a pcap file's header the same way), never zero bytes that no reader
// takes for its format.
TEST(RecordWriter, AFileWhoseFirstFlushFailsKeepsItsHead) {
  TempDir dir;
  const std::string head = harFileHead();
  // Room for the head, not for one record.
  const std::vector<uint64_t> v = recordIntoFullDisk(dir, "head.har", head.size() + 20);
  EXPECT_EQ(v[1], 0u) << "nothing written";
  EXPECT_EQ(v[0], v[4]) << "every record a write error";
  const auto har = dir.files("head", ".har");
  ASSERT_FALSE(har.empty());
  for (const auto& f : har) {
    EXPECT_EQ(slurp(f), head) << f;
  }
}

TEST(RecordOptions, Checks) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "x.pcap");
  EXPECT_NE(checkRecordOptions(o).find("unredacted"), std::string::npos);
  o.pcapUnredacted = true;
  EXPECT_EQ(checkRecordOptions(o), "");
  o.redact = false;
  o.pcapUnredacted = false;
  EXPECT_EQ(checkRecordOptions(o), "");
  RecordOptions bad = optionsFor(dir, "x.jsonl");
  bad.path = dir.path() + "/x.txt";
  EXPECT_NE(checkRecordOptions(bad).find(".har, .jsonl or .pcap"), std::string::npos);
  bad = optionsFor(dir, "x.jsonl");
  bad.path = dir.path() + "/missing/x.jsonl";
  EXPECT_NE(checkRecordOptions(bad).find("does not exist"), std::string::npos);
  bad = optionsFor(dir, "x.jsonl");
  bad.maxTotalBytes = bad.maxFileBytes - 1;
  EXPECT_NE(checkRecordOptions(bad), "");
  EXPECT_EQ(formatFromPath("a/b.har"), RecordFormat::kHar);
  EXPECT_EQ(formatFromPath("b.ndjson"), RecordFormat::kJsonl);
  EXPECT_FALSE(formatFromPath("b.json"));
}

}  // namespace
}  // namespace shadowtap::record
