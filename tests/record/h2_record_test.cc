// Recording HTTP/2 requests: the HAR and JSON lines entries of an model::Request.
#include <gtest/gtest.h>

#include <nlohmann/json.hpp>

#include "record/codec.h"
#include "record/h2_record.h"
#include "record/record_writer.h"
#include "record_test_util.h"

namespace shadowtap::record {
namespace {

using testing::slurp;
using testing::kMay1;
using testing::make;
using testing::optionsFor;
using testing::TempDir;
using Json = nlohmann::json;

// A gRPC message frame: not UTF-8, so it is stored as base64.
const std::string kGrpcBody("\x00\x00\x00\x00\x03\xff\x08\x01", 8);

model::Request grpcCall() {
  model::Request r;
  r.flow.saddr = {198, 18, 0, 1};
  r.flow.daddr = {198, 18, 0, 2};
  r.flow.sport = 40000;
  r.flow.dport = 50051;
  r.ruleId = 2;
  r.streamId = 3;
  r.tsNs = 1'500'000;
  r.headers = {{":method", "POST", false},
               {":scheme", "http", false},
               {":authority", "svc:50051", false},
               {":path", "/pkg.Svc/Call?token=s3cret&x=1", false},
               {"content-type", "application/grpc", false},
               {"te", "trailers", false},
               {"authorization", "Bearer abc", true},
               {"cookie", "a=1", false},
               {"cookie", "b=2", false},
               {"x-dup", "a", false},
               {"x-dup", "b", false}};
  r.body = kGrpcBody;
  r.trailers = {{"x-checksum", "c1", false}, {"x-secret", "zz", true}};
  r.finishHttp2();
  return r;
}

Json pairsJson(std::initializer_list<std::pair<const char*, const char*>> l) {
  Json out = Json::array();
  for (const auto& [n, v] : l) {
    out.push_back(Json::array({n, v}));
  }
  return out;
}

TEST(H2Record, JsonLineHasEveryFieldTrailersFlagsAndRedaction) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "g.jsonl");
  ASSERT_EQ(applyRedactSpec("header:X-Secret,query:token", o), "");
  auto w = make(o);
  const model::Request original = grpcCall();
  w->record(original);
  w->close();
  // record() copies; the caller's request is unchanged.
  EXPECT_EQ(original.headers, grpcCall().headers);
  EXPECT_EQ(original.body, kGrpcBody);
  EXPECT_EQ(original.trailers, grpcCall().trailers);
  const auto files = dir.files("g", ".jsonl");
  ASSERT_EQ(files.size(), 1u);
  const std::string text = slurp(files[0]);
  ASSERT_EQ(std::count(text.begin(), text.end(), '\n'), 1);
  const Json j = Json::parse(text);
  EXPECT_EQ(j["time"], "2024-05-01T12:00:00.001500Z");
  EXPECT_EQ(j["flow"], "198.18.0.1:40000->198.18.0.2:50051");
  EXPECT_EQ(j["rule"], 2);
  EXPECT_EQ(j["method"], "POST");
  EXPECT_EQ(j["target"], "/pkg.Svc/Call?token=[REDACTED]&x=1");
  EXPECT_EQ(j["version"], "HTTP/2");
  EXPECT_EQ(j["headers"], pairsJson({{":method", "POST"},
                                     {":scheme", "http"},
                                     {":authority", "svc:50051"},
                                     {":path", "/pkg.Svc/Call?token=[REDACTED]&x=1"},
                                     {"content-type", "application/grpc"},
                                     {"te", "trailers"},
                                     {"authorization", "[REDACTED]"},
                                     {"cookie", "[REDACTED]"},
                                     {"cookie", "[REDACTED]"},
                                     {"x-dup", "a"},
                                     {"x-dup", "b"}}));
  EXPECT_EQ(j["headers_never_index"], Json::array({6}));
  EXPECT_EQ(j["trailers"], pairsJson({{"x-checksum", "c1"}, {"x-secret", "[REDACTED]"}}));
  EXPECT_EQ(j["trailers_never_index"], Json::array({1}));
  EXPECT_EQ(j["body_length"], 8);
  EXPECT_EQ(j["body_sha256"], sha256Hex(kGrpcBody));
  EXPECT_EQ(j["body_encoding"], "base64");
  EXPECT_EQ(base64Decode(j["body"].get<std::string>()), kGrpcBody);
  EXPECT_FALSE(j.contains("wire_body"));
  const RecordStats& s = w->stats();
  // authorization, 2 cookies, x-secret, token.
  EXPECT_EQ(s.redactedValues, 5u);
  EXPECT_EQ(s.offered, 1u);
  EXPECT_EQ(s.written, 1u);
  EXPECT_EQ(s.bodiesOmitted, 0u);
}

TEST(H2Record, BodiesAsLengthAndHashOnlyAndNoFlagsWhenNoneSet) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "h.jsonl");
  o.keepBodies = false;
  auto w = make(o);
  model::Request r = grpcCall();
  r.headers[6].neverIndex = false;
  r.trailers.clear();
  w->record(std::move(r));
  model::Request empty = grpcCall();
  empty.body.clear();
  empty.trailers.clear();
  w->record(empty);
  w->close();
  const std::string text = slurp(dir.files("h", ".jsonl").at(0));
  const Json j = Json::parse(text.substr(0, text.find('\n')));
  EXPECT_FALSE(j.contains("body"));
  EXPECT_FALSE(j.contains("body_encoding"));
  EXPECT_FALSE(j.contains("headers_never_index"));
  EXPECT_FALSE(j.contains("trailers_never_index"));
  EXPECT_EQ(j["trailers"], Json::array());
  EXPECT_EQ(j["body_length"], 8);
  EXPECT_EQ(j["body_sha256"], sha256Hex(kGrpcBody));
  EXPECT_EQ(w->stats().bodiesOmitted, 1u);  // an empty body is not "omitted"
  EXPECT_EQ(w->stats().written, 2u);
}

TEST(H2Record, HarEntryLikeChromeWithTrailersAndNeverIndexFlags) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "g.har");
  o.redact = false;
  auto w = make(o);
  w->record(grpcCall());
  model::Request get;
  get.tsNs = 2'000'000;
  get.headers = {{":method", "GET", false}, {":path", "/x?a=1", false}, {"host", "h:1", false}};
  get.finishHttp2();
  w->record(get);
  w->close();
  const Json har = Json::parse(slurp(dir.files("g", ".har").at(0)));
  ASSERT_EQ(har["log"]["entries"].size(), 2u);
  const Json& e = har["log"]["entries"][0];
  const Json& req = e["request"];
  EXPECT_EQ(req["method"], "POST");
  EXPECT_EQ(req["url"], "http://svc:50051/pkg.Svc/Call?token=s3cret&x=1");
  EXPECT_EQ(req["httpVersion"], "HTTP/2");
  ASSERT_EQ(req["headers"].size(), 11u);
  const model::Request original = grpcCall();
  for (size_t i = 0; i < original.headers.size(); ++i) {
    EXPECT_EQ(req["headers"][i]["name"], original.headers[i].name) << i;
    EXPECT_EQ(req["headers"][i]["value"], original.headers[i].value) << i;
    EXPECT_EQ(req["headers"][i].contains("_neverIndex"), original.headers[i].neverIndex) << i;
  }
  EXPECT_EQ(req["headers"][6]["_neverIndex"], true);
  EXPECT_EQ(req["_trailers"], Json::parse(R"([{"name":"x-checksum","value":"c1"},
                                              {"name":"x-secret","value":"zz","_neverIndex":true}])"));
  EXPECT_EQ(req["cookies"], Json::parse(R"([{"name":"a","value":"1"},{"name":"b","value":"2"}])"));
  EXPECT_EQ(req["queryString"], Json::parse(R"([{"name":"token","value":"s3cret"},{"name":"x","value":"1"}])"));
  EXPECT_EQ(req["headersSize"], -1);
  EXPECT_EQ(req["bodySize"], 8);
  EXPECT_EQ(req["postData"]["mimeType"], "application/grpc");
  EXPECT_EQ(req["postData"]["_encoding"], "base64");
  EXPECT_EQ(base64Decode(req["postData"]["text"].get<std::string>()), kGrpcBody);
  EXPECT_EQ(e["_target"], "/pkg.Svc/Call?token=s3cret&x=1");
  EXPECT_EQ(e["_bodySha256"], sha256Hex(kGrpcBody));
  EXPECT_EQ(e["_rule"], 2);
  EXPECT_EQ(e["startedDateTime"], "2024-05-01T12:00:00.001500Z");
  // No :scheme: http; no :authority: the host field.
  const Json& g = har["log"]["entries"][1]["request"];
  EXPECT_EQ(g["url"], "http://h:1/x?a=1");
  EXPECT_EQ(g["_trailers"], Json::array());
  EXPECT_FALSE(g.contains("postData"));
  EXPECT_EQ(g["bodySize"], 0);
}

TEST(H2Record, HarRedactsHeadersTrailersAndPathQuery) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "r.har");
  ASSERT_EQ(applyRedactSpec("x-secret,query:token", o), "");
  auto w = make(o);
  w->record(grpcCall());
  w->close();
  const Json har = Json::parse(slurp(dir.files("r", ".har").at(0)));
  const Json& req = har["log"]["entries"][0]["request"];
  EXPECT_EQ(req["url"], "http://svc:50051/pkg.Svc/Call?token=[REDACTED]&x=1");
  EXPECT_EQ(req["headers"][3]["value"], "/pkg.Svc/Call?token=[REDACTED]&x=1");
  EXPECT_EQ(req["headers"][6]["value"], "[REDACTED]");
  EXPECT_EQ(req["headers"][6]["_neverIndex"], true);
  EXPECT_EQ(req["headers"][7]["value"], "[REDACTED]");
  EXPECT_EQ(req["cookies"], Json::array());
  EXPECT_EQ(req["_trailers"][1]["value"], "[REDACTED]");
  EXPECT_EQ(req["_trailers"][0]["value"], "c1");
  EXPECT_EQ(w->stats().redactedValues, 5u);
}

TEST(H2Record, PcapRecorderIgnoresRequestsAndQueueLimitsCount) {
  TempDir dir;
  RecordOptions o = optionsFor(dir, "c.pcap");
  o.redact = false;
  auto p = make(o);
  p->record(grpcCall());
  EXPECT_EQ(p->stats().offered, 0u);
  p->close();

  // The byte limit of the hand-off queue counts an HTTP/2 request's fields and body.
  RecordOptions q = optionsFor(dir, "q.jsonl");
  q.queueBytes = 100;  // less than one request
  auto w = make(q);
  w->record(grpcCall());
  w->close();
  EXPECT_EQ(w->stats().offered, 1u);
  EXPECT_EQ(w->stats().dropped, 1u);
  EXPECT_EQ(w->stats().written, 0u);
}

TEST(H2Record, BuildRestoresFieldsFlagsAndSuffixesTheAuthority) {
  const model::Request original = grpcCall();
  const RecordedRequest rec = fromH2Request(original, kMay1, true);
  EXPECT_TRUE(rec.isHttp2());
  EXPECT_EQ(rec.unixNs, kMay1 + 1'500'000);
  EXPECT_EQ(rec.neverIndexHeaders, std::vector<uint32_t>{6});
  EXPECT_EQ(rec.headSize, 0u);
  model::Request same = buildH2Request(rec, "");
  EXPECT_EQ(same.headers, original.headers);
  EXPECT_EQ(same.trailers, original.trailers);
  EXPECT_EQ(same.body, original.body);
  EXPECT_EQ(same.ruleId, 2u);
  model::Request shadow = buildH2Request(rec, "-shadow");
  std::vector<model::HeaderField> expected = original.headers;
  expected[2].value = "svc-shadow:50051";
  EXPECT_EQ(shadow.headers, expected);
  // Normalizing our own record changes nothing.
  RecordedRequest copy = rec;
  normalizeH2(copy, "https", "other:1");
  EXPECT_EQ(copy, rec);
}

TEST(H2Record, NormalizeMakesABrowserEntrySendable) {
  RecordedRequest r;
  r.httpVersion = "HTTP/2";
  r.method = "POST";
  r.target = "/api/x?y=1";
  r.headers = {{"Content-Type", "text/plain"}, {":authority", "example.test:8443"}, {"Connection", "keep-alive"},
               {":method", "POST"},         {"Authorization", "x"},                {"te", "gzip"}};
  r.neverIndexHeaders = {4};
  r.trailers = {{"X-T", "1"}};
  normalizeH2(r, "https", "ignored:1");
  const std::vector<std::pair<std::string, std::string>> expected = {
      {":authority", "example.test:8443"}, {":method", "POST"},       {":scheme", "https"},
      {":path", "/api/x?y=1"},             {"content-type", "text/plain"}, {"authorization", "x"}};
  EXPECT_EQ(r.headers, expected);
  EXPECT_EQ(r.neverIndexHeaders, std::vector<uint32_t>{5});
  EXPECT_EQ(r.trailers[0].first, "x-t");
  EXPECT_EQ(r.target, "/api/x?y=1");

  RecordedRequest c;
  c.httpVersion = "HTTP/2";
  c.method = "CONNECT";
  c.target = "h:443";
  c.headers = {{"host", "h:443"}};
  normalizeH2(c, "", "");
  const std::vector<std::pair<std::string, std::string>> connect = {
      {":method", "CONNECT"}, {":authority", "h:443"}, {"host", "h:443"}};
  EXPECT_EQ(c.headers, connect);
  EXPECT_EQ(c.target, "h:443");
}

}  // namespace
}  // namespace shadowtap::record
