// Flags, rules and the TOML config file together (parseConfig).
#include "config.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <cstdio>
#include <fstream>
#include <string>
#include <vector>

namespace shadowtap {
namespace {

// argv for `args` after the program's name; the pointers point into `args`.
std::vector<char*> argvOf(std::vector<std::string>& args) {
  args.insert(args.begin(), "shadowtap");
  std::vector<char*> argv;
  for (auto& a : args) {
    argv.push_back(a.data());
  }
  return argv;
}

int parse(std::vector<std::string> args, Config& c) {
  std::vector<char*> argv = argvOf(args);
  return parseConfig(static_cast<int>(argv.size()), argv.data(), c);
}

// As a reload parses (reparseConfig): false and *error on refusal.
bool reparse(std::vector<std::string> args, Config& c, std::string* error) {
  std::vector<char*> argv = argvOf(args);
  return reparseConfig(static_cast<int>(argv.size()), argv.data(), c, error);
}

class TempFile {
 public:
  explicit TempFile(const std::string& text) {
    char name[] = "/tmp/shadowtap-config-XXXXXX";
    int fd = mkstemp(name);
    EXPECT_GE(fd, 0);
    close(fd);
    path_ = name;
    std::ofstream(path_) << text;
  }
  ~TempFile() { std::remove(path_.c_str()); }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

TEST(ConfigTest, ShorthandFlagsMakeTheFirstRule) {
  Config c;
  ASSERT_EQ(parse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--mirror-percentage", "12.5", "--shadow-suffix",
                   "-sh", "--mirror-connections", "3", "--mirror-max-connections", "40", "--rule",
                   "port=9000,mirror=127.0.0.1:10,suffix=-x,connections=5"},
                  c),
            -1);
  ASSERT_EQ(c.rules.size(), 2u);
  EXPECT_EQ(c.rules[0].port, 8000);
  EXPECT_EQ(c.rules[0].first().target, "127.0.0.1:9");
  EXPECT_EQ(c.rules[0].first().sampleBasisPoints(), 1250u);
  EXPECT_EQ(c.rules[0].first().suffix, "-sh");
  EXPECT_EQ(c.rules[0].first().connections, 3u);
  EXPECT_EQ(c.rules[0].first().maxConnections, 40u);  // grows from 3 to 40
  EXPECT_EQ(c.rules[1].port, 9000);
  EXPECT_EQ(c.rules[1].first().suffix, "-x");
  EXPECT_EQ(c.rules[1].first().connections, 5u);     // the rule's own: a fixed pool
  EXPECT_EQ(c.rules[1].first().maxConnections, 5u);
}

TEST(ConfigTest, ConfigFileAndFlagsOverrideIt) {
  TempFile file(
      "interface = [\"lo\"]\n"
      "summary-interval = 3\n"
      "mirror-max-rps = 7\n"
      "mirror-drop-policy = \"oldest\"\n"
      "rule = [\"port=8000,mirror=127.0.0.1:9,methods=GET|HEAD\", \"port=9000,mirror=127.0.0.1:10,header=x-a:1\"]\n");
  Config c;
  ASSERT_EQ(parse({"--config", file.path()}, c), -1);
  EXPECT_EQ(c.interfaces, std::vector<std::string>{"lo"});
  EXPECT_EQ(c.summaryIntervalSec, 3u);
  ASSERT_EQ(c.rules.size(), 2u);
  EXPECT_EQ(c.rules[0].methods, (std::vector<std::string>{"GET", "HEAD"}));
  EXPECT_EQ(c.rules[0].first().maxRps, 7u);
  EXPECT_EQ(c.rules[0].first().dropPolicy, rules::DropPolicy::kOldest);
  ASSERT_EQ(c.rules[1].headers.size(), 1u);

  Config o;
  ASSERT_EQ(parse({"--config", file.path(), "--summary-interval", "5", "--rule", "port=7000,mirror=127.0.0.1:11"}, o),
            -1);
  EXPECT_EQ(o.summaryIntervalSec, 5u);
  ASSERT_EQ(o.rules.size(), 1u);  // the flag's rules replace the file's
  EXPECT_EQ(o.rules[0].port, 7000);
  EXPECT_EQ(o.rules[0].first().maxRps, 7u);  // other file settings still apply
}

// Several mirrors in the TOML file's rule strings, with the flags' defaults
// under each mirror's own keys; a bad mirror value is refused.
TEST(ConfigTest, SeveralMirrorsInTheConfigFile) {
  TempFile file(
      "interface = [\"lo\"]\n"
      "mirror-max-rps = 7\n"
      "rule = [\"port=8000,sample=request,mirror=127.0.0.1:9,mirror=127.0.0.1:10;percentage=20;host=keep;max-rps=3\"]\n");
  Config c;
  ASSERT_EQ(parse({"--config", file.path()}, c), -1);
  ASSERT_EQ(c.rules.size(), 1u);
  ASSERT_EQ(c.rules[0].mirrors.size(), 2u);
  EXPECT_EQ(c.rules[0].mirrors[0].maxRps, 7u);
  EXPECT_EQ(c.rules[0].mirrors[0].hostMode, rules::HostMode::kSuffix);
  EXPECT_EQ(c.rules[0].mirrors[1].target, "127.0.0.1:10");
  EXPECT_EQ(c.rules[0].mirrors[1].sampleBasisPoints(), 2000u);
  EXPECT_EQ(c.rules[0].mirrors[1].hostMode, rules::HostMode::kKeep);
  EXPECT_EQ(c.rules[0].mirrors[1].maxRps, 3u);
  TempFile bad("interface = [\"lo\"]\nrule = [\"port=8000,mirror=127.0.0.1:9,mirror=127.0.0.1:10;percentage=x\"]\n");
  Config b;
  std::string error;
  EXPECT_FALSE(reparse({"--config", bad.path()}, b, &error));
  EXPECT_NE(error.find("'mirror=127.0.0.1:10;percentage=x': percentage must be a number"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
}

TEST(ConfigTest, Rejections) {
  TempFile typo("interface = [\"lo\"]\nrule = [\"port=8000,mirror=127.0.0.1:9\"]\nmirror-queu = 3\n");
  auto rc = [](std::vector<std::string> args) {
    Config fresh;
    return parse(std::move(args), fresh);
  };
  EXPECT_EQ(rc({"--config", typo.path()}), 2);
  EXPECT_EQ(rc({"-i", "lo"}), 2);
  EXPECT_EQ(rc({"-i", "lo", "-p", "8000"}), 2);
  EXPECT_EQ(rc({"-i", "lo", "-m", "127.0.0.1:9"}), 2);
  EXPECT_EQ(rc({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9,percentage=101"}), 2);
  EXPECT_EQ(rc({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9", "--rule", "port=8000,mirror=127.0.0.1:8"}), 2);
  EXPECT_EQ(rc({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--mirror-drop-policy", "random"}), 2);
  // Compare flags need a compare rule; ignore paths must parse.
  EXPECT_EQ(rc({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--compare-output", "/tmp/x.jsonl"}), 2);
  EXPECT_EQ(rc({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9,compare=true", "--compare-ignore-path",
                "timestamp"}),
            2);
}

TEST(ConfigTest, WorkersAreAutoOrOneToSixtyFour) {
  Config c;
  ASSERT_EQ(parse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9"}, c), -1);
  EXPECT_EQ(c.workers, 0u) << "auto by default";
  Config three;
  ASSERT_EQ(parse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--workers", "3"}, three), -1);
  EXPECT_EQ(three.workers, 3u);
  Config autoWorkers;
  ASSERT_EQ(parse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--workers", "auto"}, autoWorkers), -1);
  EXPECT_EQ(autoWorkers.workers, 0u);
  for (const char* bad : {"0", "65", "two", "2x", ""}) {
    Config fresh;
    EXPECT_EQ(parse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--workers", bad}, fresh), 2) << bad;
  }
}

TEST(ConfigTest, ARingBufferTooSmallForItsWorkersIsRefusedSayingWhatToRaiseOrLower) {
  // Each worker's ring must hold the largest record (a 64 KiB payload class):
  // 128 KiB at least, so 1 MiB carries 8 workers, and 64 need 8 MiB.
  for (const std::vector<std::string>& fine :
       {std::vector<std::string>{"--ring-buffer-mib", "1", "--workers", "8"},
        std::vector<std::string>{"--ring-buffer-mib", "8", "--workers", "64"},
        std::vector<std::string>{"--ring-buffer-mib", "1"}}) {  // auto: 4 workers at most
    Config c;
    std::vector<std::string> args = {"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9"};
    args.insert(args.end(), fine.begin(), fine.end());
    EXPECT_EQ(parse(args, c), -1) << fine[1];
  }
  Config c;
  EXPECT_EQ(parse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--ring-buffer-mib", "1", "--workers", "16"}, c), 2);
  Config again;
  std::string error;
  EXPECT_FALSE(reparse({"-i", "lo", "-p", "8000", "-m", "127.0.0.1:9", "--ring-buffer-mib", "1", "--workers", "16"},
                       again, &error));
  EXPECT_NE(error.find("64 KiB"), std::string::npos) << error;
  EXPECT_NE(error.find("raise --ring-buffer-mib to 2 or lower --workers to 8"), std::string::npos) << error;
  EXPECT_EQ(error.find('\n'), std::string::npos) << "one line: " << error;
}

TEST(ConfigTest, CompareFlags) {
  Config c;
  ASSERT_EQ(parse({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9,compare=true,secondary=127.0.0.1:10",
                   "--compare-output", "/tmp/d.jsonl", "--compare-ignore-header", "X-Request-Id",
                   "--compare-ignore-header", "Etag", "--compare-ignore-path", "$.now", "--compare-ignore-path",
                   "$.items[*].id"},
                  c),
            -1);
  ASSERT_EQ(c.rules.size(), 1u);
  EXPECT_TRUE(c.rules[0].compare);
  EXPECT_EQ(c.rules[0].secondary, "127.0.0.1:10");
  EXPECT_EQ(c.compareOutput, "/tmp/d.jsonl");
  EXPECT_EQ(c.compareIgnoreHeaders, (std::vector<std::string>{"X-Request-Id", "Etag"}));
  EXPECT_EQ(c.compareIgnorePaths, (std::vector<std::string>{"$.now", "$.items[*].id"}));
  EXPECT_EQ(c.compareMaxMiB, 256u) << "the default bound on responses held for comparison";
  Config bounded;
  ASSERT_EQ(parse({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9,compare=true", "--compare-max-mib", "64"},
                  bounded),
            -1);
  EXPECT_EQ(bounded.compareMaxMiB, 64u);
  for (const char* bad : {"0", "1048577", "-1", "lots"}) {
    Config fresh;
    EXPECT_EQ(parse({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9,compare=true", "--compare-max-mib", bad},
                    fresh),
              2)
        << bad;
  }
  // Without a compare rule the bound would bind nothing: refused, as the other compare flags are.
  Config without;
  EXPECT_EQ(parse({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9", "--compare-max-mib", "64"}, without), 2);
  EXPECT_EQ(parse({"-i", "lo", "--rule", "port=8000,mirror=127.0.0.1:9", "--compare-output", "/tmp/d.jsonl"}, without),
            2);
}

}  // namespace
}  // namespace shadowtap
