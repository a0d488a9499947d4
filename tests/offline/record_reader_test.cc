#include "offline/record_reader.h"

#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include <gtest/gtest.h>

#include <fstream>

#include "http/host_rewrite.h"
#include "record/codec.h"
#include "record/h2_record.h"
#include "record/record_writer.h"
#include "record_test_util.h"

namespace shadowtap::offline {
namespace {

using record::testing::kMay1;
using record::testing::makeRequest;
using record::testing::slurp;
using record::testing::TempDir;
using namespace std::string_literals;

const std::vector<std::string> kRequests = {
    "GET /r/1?q=%20x&y=1 HTTP/1.1\r\nhOsT: httpbin:8000\r\nUser-Agent: st/1\r\nX-Dup: a\r\nX-Dup: b\r\n\r\n",
    "POST /r/2 HTTP/1.1\r\nHost: httpbin:8000\r\nContent-Type: application/octet-stream\r\nContent-Length: 4\r\n\r\n"
    "\x00\xff\x10\x80"s,  // s: the NUL is part of the body
    "POST /r/3 HTTP/1.1\r\nHost: httpbin:8000\r\nTransfer-Encoding: chunked\r\n\r\n"
    "3;ext=1\r\nabc\r\n2\r\nde\r\n0\r\nX-Trailer: done\r\n\r\n",
    "HEAD /r/4 HTTP/1.1\r\nHost: [2001:db8::2]:8000\r\nAuthorization: Basic Zm9v\r\n\r\n",
    "GET http://httpbin:8000/abs HTTP/1.1\r\nHost: httpbin:8000\r\n\r\n",
    // Issue 17: rebuilt with the Host live mirroring adds (from the recorded flow).
    "GET /r/6 HTTP/1.0\r\nAccept: */*\r\n\r\n",
};

// What live mirroring sends for the same request (the independent reference).
std::string shadowed(const std::string& bytes) {
  model::Request r = makeRequest(bytes);
  // makeRequest looks for "Host: " exactly; the lower-case variant needs help.
  const size_t h = bytes.find("hOsT: ");
  if (h != std::string::npos) {
    r.hostOffset = h + 6;
    r.hostLength = bytes.find("\r\n", h) - r.hostOffset;
  }
  if (bytes.find("http://") != std::string::npos) {
    r.targetHostOffset = bytes.find("http://") + 7;
    r.targetHostLength = 12;
  }
  return http::rewriteRequestHost(r, "-shadow");
}

std::vector<std::string> recordAndRead(const std::string& name, const std::string& redact, ReadResult* out) {
  TempDir dir;
  record::RecordOptions o = record::testing::optionsFor(dir, name);
  EXPECT_EQ(record::applyRedactSpec(redact, o), "");
  auto w = record::testing::make(o);
  uint64_t ts = 1'000'000;
  for (const auto& b : kRequests) {
    w->onRequest(makeRequest(b, ts += 250'000'000));
  }
  w->close();
  const auto files = dir.files(name.substr(0, name.find('.')), name.substr(name.find('.')));
  EXPECT_EQ(files.size(), 1u);
  *out = readRecordFile(files.at(0));
  std::vector<std::string> rebuilt;
  for (const auto& r : out->requests) {
    rebuilt.push_back(record::buildRequestBytes(r, "-shadow"));
  }
  return rebuilt;
}

class RoundTrip : public ::testing::TestWithParam<const char*> {};

TEST_P(RoundTrip, RebuiltBytesEqualLiveMirrorBytes) {
  ReadResult rr;
  const auto rebuilt = recordAndRead(GetParam(), "none", &rr);
  EXPECT_EQ(rr.error, "");
  EXPECT_EQ(rr.malformed, 0u) << rr.firstMalformed;
  EXPECT_FALSE(rr.cut);
  ASSERT_EQ(rebuilt.size(), kRequests.size());
  for (size_t i = 0; i < kRequests.size(); ++i) {
    EXPECT_EQ(rebuilt[i], shadowed(kRequests[i])) << i;
  }
  EXPECT_EQ(rebuilt.back(), "GET /r/6 HTTP/1.0\r\nHost: 198.18.0.2-shadow:8000\r\nAccept: */*\r\n\r\n");
  EXPECT_EQ(rr.requests[0].unixNs, kMay1 + 251'000'000);
  EXPECT_EQ(rr.requests[1].unixNs - rr.requests[0].unixNs, 250'000'000);
  EXPECT_EQ(rr.requests[0].flow, "198.18.0.1:40000->198.18.0.2:8000");
  EXPECT_EQ(rr.requests[2].body, "abcde");
  EXPECT_EQ(rr.requests[2].bodyLength, 5u);
}

TEST_P(RoundTrip, RedactedValuesComeBackAsTheMarker) {
  ReadResult rr;
  const auto rebuilt = recordAndRead(GetParam(), "default", &rr);
  ASSERT_EQ(rebuilt.size(), kRequests.size());
  std::string expected = shadowed(kRequests[3]);
  expected.replace(expected.find("Basic Zm9v"), 10, "[REDACTED]");
  EXPECT_EQ(rebuilt[3], expected);
  EXPECT_EQ(rebuilt[0], shadowed(kRequests[0]));
}

INSTANTIATE_TEST_SUITE_P(Formats, RoundTrip, ::testing::Values("t.har", "t.jsonl"));

TEST(RecordReader, CrashCutHarIsReadUpToItsLastCompleteEntry) {
  TempDir dir;
  const pid_t child = fork();
  ASSERT_GE(child, 0);
  if (child == 0) {
    // The child records and dies without closing: what a crash leaves.
    record::RecordOptions o;
    o.path = dir.path() + "/crash.har";
    o.format = record::RecordFormat::kHar;
    o.realtimeOffsetNs = kMay1;
    std::string error;
    auto w = record::makeRecordWriter(o, &error);
    for (int i = 0; i < 3; ++i) {
      w->onRequest(makeRequest(kRequests[static_cast<size_t>(i)]));
    }
    for (int i = 0; i < 2000 && !(w->stats().written == 3 && w->stats().flushes > 0 && w->stats().queueDepth == 0);
         ++i) {
      usleep(1000);
    }
    usleep(20000);  // let the flush that follows the last write finish
    _exit(42);
  }
  int status = 0;
  waitpid(child, &status, 0);
  ASSERT_EQ(WEXITSTATUS(status), 42);
  const auto files = dir.files("crash", ".har");
  ASSERT_EQ(files.size(), 1u);
  std::string text = slurp(files[0]);
  EXPECT_FALSE(text.ends_with("]}}\n"));
  ReadResult rr = parseRecordText(text);
  EXPECT_EQ(rr.error, "");
  EXPECT_TRUE(rr.cut);
  EXPECT_EQ(rr.format, ReadResult::Format::kHar);
  ASSERT_EQ(rr.requests.size(), 3u);
  EXPECT_EQ(record::buildRequestBytes(rr.requests[2], ""), kRequests[2]);
  // Cut in the middle of the last entry: the two complete ones are read.
  text.resize(text.size() - 40);
  rr = parseRecordText(text);
  EXPECT_TRUE(rr.cut);
  EXPECT_EQ(rr.requests.size(), 2u);
  EXPECT_EQ(rr.malformed, 0u);
  // The documented repair (drop the partial line, append "]}}") makes it valid HAR.
  text.resize(text.rfind('\n') + 1);
  text += "]}}\n";
  rr = parseRecordText(text);
  EXPECT_FALSE(rr.cut);
  EXPECT_EQ(rr.requests.size(), 2u);
}

TEST(RecordReader, BrowserHar) {
  const std::string har = R"({"log":{"version":"1.2","creator":{"name":"WebInspector","version":"537.36"},
    "entries":[{"startedDateTime":"2024-05-01T12:00:00.000+02:00","time":5,
      "request":{"method":"POST","url":"https://example.test:8443/api/x?y=1#frag","httpVersion":"http/2.0",
        "headers":[{"name":":authority","value":"example.test:8443"},{"name":":method","value":"POST"},
                   {"name":"content-type","value":"text/plain"},{"name":"content-length","value":"2"}],
        "queryString":[],"cookies":[],"headersSize":-1,"bodySize":2,
        "postData":{"mimeType":"text/plain","text":"hi"}},
      "response":{"status":200,"statusText":"","httpVersion":"","cookies":[],"headers":[],
        "content":{"size":0,"mimeType":""},"redirectURL":"","headersSize":-1,"bodySize":-1},
      "cache":{},"timings":{"send":0,"wait":0,"receive":0}}]}})";
  // An HTTP/2 entry is replayed as HTTP/2: the pseudo-headers it lacks come from the URL.
  ReadResult rr = parseRecordText(har);
  ASSERT_EQ(rr.requests.size(), 1u);
  ASSERT_TRUE(rr.requests[0].isHttp2());
  const model::Request h2req = record::buildH2Request(rr.requests[0], "-shadow");
  const std::vector<model::HeaderField> expected = {
      {":authority", "example.test-shadow:8443", false}, {":method", "POST", false}, {":scheme", "https", false},
      {":path", "/api/x?y=1", false}, {"content-type", "text/plain", false}, {"content-length", "2", false}};
  EXPECT_EQ(h2req.headers, expected);
  EXPECT_EQ(h2req.body, "hi");
  EXPECT_EQ(rr.requests[0].target, "/api/x?y=1");
  EXPECT_EQ(rr.requests[0].unixNs, kMay1 - int64_t{7200} * 1'000'000'000);

  // Another version (here HTTP/3): HTTP/1.1 bytes, pseudo-headers dropped, :authority as Host.
  std::string h3 = har;
  h3.replace(h3.find("http/2.0"), 8, "h3");
  rr = parseRecordText(h3);
  ASSERT_EQ(rr.requests.size(), 1u);
  EXPECT_EQ(record::buildRequestBytes(rr.requests[0], "-shadow"),
            "POST /api/x?y=1 HTTP/1.1\r\nHost: example.test-shadow:8443\r\ncontent-type: text/plain\r\n"
            "content-length: 2\r\n\r\nhi");
}

TEST(RecordReader, MalformedLinesAreCountedAndBadFilesRejected) {
  const std::string good =
      R"({"time":"2024-05-01T12:00:00Z","method":"GET","target":"/","headers":[["Host","h"]]})";
  ReadResult rr = parseRecordText(good + "\n{\"time\":1}\nnot json\n" + good + "\n");
  EXPECT_EQ(rr.format, ReadResult::Format::kJsonl);
  EXPECT_EQ(rr.requests.size(), 2u);
  EXPECT_EQ(rr.malformed, 2u);
  rr = parseRecordText("hello\nworld\n");
  EXPECT_NE(rr.error, "");
  rr = parseRecordText(R"({"log":{"version":"1.2"}})");
  EXPECT_NE(rr.error, "");
  rr = readRecordFile("/nonexistent/x.har");
  EXPECT_NE(rr.error.find("cannot open"), std::string::npos);
  rr = parseRecordText("");
  EXPECT_EQ(rr.error, "");
  EXPECT_TRUE(rr.requests.empty());
}

// A JSON line with `headers` (JSON text) and the other fields as given.
std::string jsonLine(const std::string& method, const std::string& target, const std::string& headers,
                     const std::string& extra = "") {
  return R"({"time":"2024-05-01T12:00:00Z","method":")" + method + R"(","target":")" + target +
         R"(","headers":)" + headers + extra + "}";
}

// A crash can leave a JSON lines file ending in a partial line: the file is
// cut, read up to its last whole record, and the partial line is not counted
// as an unreadable record. A bad last line that ends with a line end is.
TEST(RecordReader, CrashCutJsonLinesAreReadUpToTheLastWholeLine) {
  const std::string good = jsonLine("GET", "/a", R"([["Host","h"]])");
  const std::string whole = good + "\n" + good + "\n" + good + "\n";
  ReadResult rr = parseRecordText(whole.substr(0, whole.size() - 20));
  EXPECT_EQ(rr.error, "");
  EXPECT_TRUE(rr.cut);
  EXPECT_EQ(rr.format, ReadResult::Format::kJsonl);
  EXPECT_EQ(rr.requests.size(), 2u);
  EXPECT_EQ(rr.malformed, 0u);
  // Only the partial line of a one-record file: a cut recording, not a format error.
  rr = parseRecordText(good.substr(0, 30));
  EXPECT_EQ(rr.error, "");
  EXPECT_TRUE(rr.cut);
  EXPECT_TRUE(rr.requests.empty());
  // Cut right after the last record's '}': that record is whole.
  rr = parseRecordText(whole.substr(0, whole.size() - 1));
  EXPECT_FALSE(rr.cut);
  EXPECT_EQ(rr.requests.size(), 3u);
  // Text that never was a record is not a cut recording, line end or not.
  rr = parseRecordText("foo");
  EXPECT_FALSE(rr.cut);
  EXPECT_NE(rr.error, "");
  // Garbage as a whole last line (with its line end) is unreadable, not cut.
  rr = parseRecordText(good + "\n" + good.substr(0, 30) + "\n");
  EXPECT_FALSE(rr.cut);
  EXPECT_EQ(rr.requests.size(), 1u);
  EXPECT_EQ(rr.malformed, 1u);
  EXPECT_EQ(rr.firstMalformed, "line 2: not a JSON object");
}

TEST(RecordReader, LineBreaksInFieldsAreMalformedNotSmuggled) {
  const std::string good = jsonLine("GET", "/", R"([["Host","h"]])");
  // A header value that would end the request and start a second one on the wire.
  const std::string smuggle =
      jsonLine("GET", "/", R"([["Host","h"],["X-A","1\r\n\r\nGET /admin HTTP/1.1\r\nHost: h"]])");
  ReadResult rr = parseRecordText(good + "\n" + smuggle + "\n" + good + "\n");
  EXPECT_EQ(rr.error, "");
  EXPECT_EQ(rr.requests.size(), 2u);
  EXPECT_EQ(rr.malformed, 1u);
  EXPECT_EQ(rr.firstMalformed, "line 2: header 2 value contains CR, LF or NUL");
  for (const auto& r : rr.requests) {
    EXPECT_EQ(record::buildRequestBytes(r, ""), "GET / HTTP/1.1\r\nHost: h\r\n\r\n");
  }
  // Every field that goes into the head: method, target, version, names; LF alone and NUL too.
  const std::vector<std::string> bad = {
      jsonLine(R"(GET / HTTP/1.1\r\nX:)", "/", R"([["Host","h"]])"),
      jsonLine("GET", R"(/ HTTP/1.1\nX: y)", R"([["Host","h"]])"),
      jsonLine("GET", "/", R"([["Host","h"]])", R"(,"version":"HTTP/1.1\r\nX: y")"),
      jsonLine("GET", "/", R"([["Host","h"],["X-A\r\nX-B","1"]])"),
      jsonLine("GET", "/", R"([["Host","h\u0000"]])"),
      jsonLine("POST", "/", R"([[":method","POST"],[":path","/"],[":scheme","http"],[":authority","h"]])",
               R"(,"version":"HTTP/2","trailers":[["grpc-status","0\r\nx: 1"]])"),
  };
  for (const auto& line : bad) {
    rr = parseRecordText(good + "\n" + line + "\n");
    EXPECT_EQ(rr.requests.size(), 1u) << line;
    EXPECT_EQ(rr.malformed, 1u) << line;
    EXPECT_NE(rr.firstMalformed.find("contains CR, LF or NUL"), std::string::npos) << rr.firstMalformed;
  }
  // A file of nothing but such records is still a recording (a rotated file
  // can hold one record), its records skipped, not a format error that stops
  // the whole replay.
  rr = parseRecordText(smuggle + "\n");
  EXPECT_EQ(rr.error, "");
  EXPECT_EQ(rr.format, ReadResult::Format::kJsonl);
  EXPECT_TRUE(rr.requests.empty());
  EXPECT_EQ(rr.malformed, 1u);
}

TEST(RecordReader, FieldsTheMirrorWouldReadOtherwiseAreMalformed) {
  const std::string good = jsonLine("GET", "/", R"([["Host","h"]])");
  // Each would reach the mirror as other fields than recorded: a name with a
  // colon is the header before it, a space splits a name or the request line.
  const std::vector<std::pair<std::string, std::string>> bad = {
      {jsonLine("GET", "/", R"([["Host","h"],["X-Forwarded-For: 198.18.0.9\tX-A","1"]])"),
       "line 2: header 2 name is not a token (RFC 9110)"},
      {jsonLine("GET", "/", R"([["Host","h"],["X A","1"]])"), "line 2: header 2 name is not a token (RFC 9110)"},
      {jsonLine("GET", "/", R"([["Host","h"],["","1"]])"), "line 2: header 2 name is not a token (RFC 9110)"},
      {jsonLine("GET", "/", R"([[":authority","h"]])"), "line 2: header 1 name is not a token (RFC 9110)"},
      {jsonLine("GET", "/a b", R"([["Host","h"]])"), "line 2: target contains a space or control character"},
      {jsonLine("GET /x", "/", R"([["Host","h"]])"), "line 2: method contains a space or control character"},
      {jsonLine("G(T", "/", R"([["Host","h"]])"), "line 2: method is not a token (RFC 9110)"},
      {jsonLine("GET", "/", R"([["Host","h"]])", R"(,"version":"HTTP/1.1 X")"),
       "line 2: version contains a space or control character"},
      {jsonLine("GET", "/", R"([[":method","GET"],[":path","/"],[":scheme","http"],[":authority","h"],["x:y","1"]])",
                R"(,"version":"HTTP/2")"),
       "line 2: header 5 name is not a token (RFC 9110)"},
  };
  for (const auto& [lines, why] : bad) {
    ReadResult rr = parseRecordText(good + "\n" + lines + "\n");
    EXPECT_EQ(rr.malformed, 1u) << lines;
    EXPECT_EQ(rr.firstMalformed, why) << lines;
    for (const auto& r : rr.requests) {
      EXPECT_TRUE(record::unsendableReason(r).empty());
    }
  }
  // What stays sendable: every tchar in a name, HTTP/2 pseudo-headers, bytes
  // over 0x7f and spaces in values.
  const std::string fine = jsonLine("M-1.x", "/p?q=%20", R"([["Host","h"],["!#$%&'*+-.^_`|~0aZ","a b \u00e9"]])") + "\n" +
                           jsonLine("POST", "/", R"([[":method","POST"],[":path","/"],[":authority","h"]])",
                                    R"(,"version":"HTTP/2")");
  ReadResult rr = parseRecordText(fine + "\n");
  EXPECT_EQ(rr.malformed, 0u) << rr.firstMalformed;
  EXPECT_EQ(rr.requests.size(), 2u);
}

// The body must end where the head says: bytes past it would reach the
// mirror as a second request on the connection.
TEST(RecordReader, ABodyThatDoesNotEndWhereItsHeadSaysIsMalformed) {
  const std::string smuggled = "x\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n";
  const auto post = [](const std::string& headers, const std::string& body, const std::string& wire = "") {
    std::string extra = R"(,"body":")" + body + R"(")";
    if (!wire.empty()) {
      extra += R"(,"wire_body":")" + record::base64Encode(wire) + R"(")";
    }
    return jsonLine("POST", "/", headers, extra);
  };
  const std::vector<std::pair<std::string, std::string>> bad = {
      {post(R"([["Host","h"],["Content-Length","1"]])", R"(x\r\n\r\nGET /admin HTTP/1.1\r\nHost: h\r\n\r\n)"),
       "body is not Content-Length (1) bytes long"},
      {post(R"([["Host","h"],["Content-Length","5x"]])", "abcde"), "body is not Content-Length (5x) bytes long"},
      {post(R"([["Host","h"],["Content-Length","1"],["Content-Length","2"]])", "a"),
       "two different Content-Length values"},
      {post(R"([["Host","h"],["Content-Length","1"],["Transfer-Encoding","chunked"]])", "a", "1\r\na\r\n0\r\n\r\n"),
       "both Content-Length and Transfer-Encoding"},
      {post(R"([["Host","h"],["Transfer-Encoding","chunked, gzip"]])", "a"), "Transfer-Encoding does not end with chunked"},
      {post(R"([["Host","h"],["Transfer-Encoding","gzip chunked"]])", "a", "1\r\na\r\n0\r\n\r\n"),
       "Transfer-Encoding does not end with chunked"},
      {post(R"([["Host","h"],["Transfer-Encoding","chunked"]])", "a", "1\r\na\r\n0\r\n\r\n" + smuggled),
       "body is not one whole chunked body"},
      {post(R"([["Host","h"],["Transfer-Encoding","chunked"]])", "a", "1\r\na\r\n0\r\n"),
       "body is not one whole chunked body"},
      {post(R"([["Host","h"]])", "abc"), "body without Content-Length or Transfer-Encoding"},
      // Bare LF ends lines for some servers (nginx, Go): the body would end at "0\n\n".
      {post(R"([["Host","h"],["Transfer-Encoding","chunked"]])", "",
            "0\nGET /admin HTTP/1.1\nHost: h\n\n\r\n\r\n"),
       "body is not one whole chunked body"},
      {post(R"([["Host","h"],["Transfer-Encoding","chunked"],["Transfer-Encoding","chunked"]])", "a",
            "1\r\na\r\n0\r\n\r\n"),
       "Transfer-Encoding given more than once"},
      {jsonLine("POST", "/", R"([["Host","h"],["Transfer-Encoding","chunked"]])",
                R"(,"version":"HTTP/1.0","body":"a","wire_body":")" + record::base64Encode("1\r\na\r\n0\r\n\r\n") +
                    R"(")"),
       "Transfer-Encoding in an HTTP/1.0 request"},
      // Recorded without bodies, a chunked request of length 0 would go out bodiless.
      {jsonLine("POST", "/", R"([["Host","h"],["Transfer-Encoding","chunked"]])", R"(,"body_length":0)"),
       "body is not one whole chunked body"},
  };
  for (const auto& [line, why] : bad) {
    ReadResult rr = parseRecordText(line + "\n");
    EXPECT_EQ(rr.malformed, 1u) << line;
    EXPECT_EQ(rr.firstMalformed, "line 1: " + why) << line;
  }
  // Whole bodies pass: Content-Length (repeated, equal), chunked with
  // extensions and trailers, "gzip, chunked" (a tab after the comma too), no
  // body at all; and a body not recorded is left to replay's own count of
  // those.
  const std::string fine =
      post(R"([["Host","h"],["Content-Length","3"],["content-length"," 3 "]])", "abc") + "\n" +
      post(R"([["Host","h"],["Transfer-Encoding","chunked"]])", "ab", "2;x=1\r\nab\r\n0\r\nT: 1\r\n\r\n") + "\n" +
      post(R"([["Host","h"],["Transfer-Encoding","gzip, chunked"]])", "", "1\r\nz\r\n0\r\n\r\n") + "\n" +
      post(R"([["Host","h"],["Transfer-Encoding","gzip,\tChunked"]])", "", "1\r\nz\r\n0\r\n\r\n") + "\n" +
      jsonLine("GET", "/", R"([["Host","h"]])") + "\n" +
      jsonLine("POST", "/", R"([["Host","h"],["Content-Length","9"]])", R"(,"body_length":9)") + "\n";
  ReadResult rr = parseRecordText(fine);
  EXPECT_EQ(rr.malformed, 0u) << rr.firstMalformed;
  ASSERT_EQ(rr.requests.size(), 6u);
  EXPECT_FALSE(rr.requests[5].bodyKept);
}

const std::string kHarHead = R"({"log":{"version":"1.2","creator":{"name":"x","version":"1"},"entries":[)";
const std::string kHarTail = "]}}";

std::string harEntry(const std::string& headers, const std::string& bodyFields) {
  return R"({"startedDateTime":"2024-05-01T12:00:00Z","request":{"method":"POST","url":"http://h/p",)"
         R"("httpVersion":"HTTP/1.1","headers":)" + headers + bodyFields + "}}";
}

TEST(RecordReader, HarLineBreaksAreMalformed) {
  const std::string har = kHarHead + harEntry(R"([{"name":"Host","value":"h"}])", "") + "," +
                          harEntry(R"([{"name":"Host","value":"h\r\nContent-Length: 0"}])", "") + kHarTail;
  ReadResult rr = parseRecordText(har);
  EXPECT_EQ(rr.requests.size(), 1u);
  EXPECT_EQ(rr.malformed, 1u);
  EXPECT_EQ(rr.firstMalformed, "entry 2: header 1 value contains CR, LF or NUL");
}

TEST(RecordReader, HarBodySizeWithoutPostDataIsABodyNotRecorded) {
  const std::string headers = R"([{"name":"Host","value":"h"},{"name":"Content-Length","value":"5"}])";
  ReadResult rr = parseRecordText(kHarHead + harEntry(headers, R"(,"bodySize":5)") + "," +
                                  harEntry(headers, R"(,"bodySize":5,"postData":{"text":"hello"})") + "," +
                                  harEntry(R"([{"name":"Host","value":"h"}])", R"(,"bodySize":0)") + kHarTail);
  ASSERT_EQ(rr.requests.size(), 3u);
  EXPECT_FALSE(rr.requests[0].bodyKept);  // replay skips it rather than send a head without its body
  EXPECT_EQ(rr.requests[0].bodyLength, 5u);
  EXPECT_TRUE(rr.requests[1].bodyKept);
  EXPECT_EQ(rr.requests[1].body, "hello");
  EXPECT_TRUE(rr.requests[2].bodyKept);  // no body at all
}

TEST(RecordReader, NonRegularAndOversizedFilesAreRejected) {
  ReadResult rr = readRecordFile("/dev/zero");
  EXPECT_NE(rr.error.find("not a regular file"), std::string::npos) << rr.error;
  TempDir dir;
  // A FIFO without a writer: refused at once, not waited on.
  const std::string fifo = dir.path() + "/fifo.jsonl";
  ASSERT_EQ(::mkfifo(fifo.c_str(), 0600), 0);
  rr = readRecordFile(fifo);
  EXPECT_NE(rr.error.find("not a regular file"), std::string::npos) << rr.error;
  rr = readRecordFile(dir.path());
  EXPECT_NE(rr.error.find("not a regular file"), std::string::npos) << rr.error;
  const std::string big = dir.path() + "/big.jsonl";
  ASSERT_EQ(::truncate(big.c_str(), 0), -1);  // not there yet
  {
    std::ofstream(big) << "";
  }
  ASSERT_EQ(::truncate(big.c_str(), static_cast<off_t>(kMaxRecordFileBytes + 1)), 0);  // sparse
  rr = readRecordFile(big);
  EXPECT_NE(rr.error.find("larger than 1024 MiB"), std::string::npos) << rr.error;
  ASSERT_EQ(::truncate(big.c_str(), 0), 0);
  std::ofstream(big) << jsonLine("GET", "/", R"([["Host","h"]])") << "\n";
  rr = readRecordFile(big);
  EXPECT_EQ(rr.error, "");
  EXPECT_EQ(rr.requests.size(), 1u);
}

}  // namespace
}  // namespace shadowtap::offline
